//! Template source → checked syntax tree.
//!
//! Two stages: `scan` splits the source into text and action token lists
//! (applying `{{-`/`-}}` trim markers and dropping comments), then `Parser`
//! builds the tree, resolving variables to slots and checking every data
//! access, function and claim name. Every error names a column.

use serde_json::Value;

use super::{ClaimAllowlist, CompileError, CompileErrorKind, MAX_NESTING, MAX_TEMPLATE_BYTES};

/// One node of a compiled template.
#[derive(Clone, Debug)]
pub(super) enum Node {
    /// Literal text.
    Text(String),
    /// `{{pipeline}}`: prints the value.
    Print(Pipe),
    /// `{{$x := pipeline}}` or `{{$x = pipeline}}`: prints nothing.
    Set(Pipe),
    /// `{{if}}…{{else}}…{{end}}`.
    If(Box<Branch>),
    /// `{{with}}…{{else}}…{{end}}`.
    With(Box<Branch>),
    /// `{{range}}…{{else}}…{{end}}`.
    Range(Box<Branch>),
}

/// A control block.
#[derive(Clone, Debug)]
pub(super) struct Branch {
    pub(super) pipe: Pipe,
    pub(super) body: Vec<Node>,
    pub(super) other: Vec<Node>,
}

/// A pipeline with the variable slots it declares or assigns.
#[derive(Clone, Debug)]
pub(super) struct Pipe {
    pub(super) vars: Vec<usize>,
    pub(super) cmds: Vec<Cmd>,
}

/// One command of a pipeline.
#[derive(Clone, Debug)]
pub(super) enum Cmd {
    /// A function call; the previous command's value, if any, is appended.
    Call(Func, Vec<Operand>),
    /// A value.
    Value(Operand),
}

/// The functions a template may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Func {
    /// `get map key`: the entry or `""`.
    Get,
    /// `default fallback value`: `fallback` when `value` is missing or `""`.
    Default,
    /// `toJson value`: Go's `json.Marshal`.
    ToJson,
}

impl Func {
    fn arity(self) -> usize {
        match self {
            Func::Get | Func::Default => 2,
            Func::ToJson => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Func::Get => "get",
            Func::Default => "default",
            Func::ToJson => "toJson",
        }
    }
}

/// A token of the data (`.AccessToken`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokenField {
    Access,
    Id,
    Refresh,
}

/// Where a value comes from.
#[derive(Clone, Debug)]
pub(super) enum Operand {
    /// The current dot (inside `with`/`range`), then fields.
    Dot(Vec<String>),
    /// `.Claims.<claim>`, then fields.
    Claim(String, Vec<String>),
    /// `.Claims` itself (only as `get`'s first argument).
    ClaimsMap,
    /// `.AccessToken`, `.IdToken`/`.IDToken`, `.RefreshToken`, then fields.
    Token(TokenField, Vec<String>),
    /// A variable slot, then fields.
    Var(usize, Vec<String>),
    /// A constant.
    Lit(Value),
    /// A parenthesised pipeline, then fields.
    Sub(Box<Pipe>, Vec<String>),
}

/// A parsed, checked template.
pub(super) struct Parsed {
    pub(super) nodes: Vec<Node>,
    pub(super) slots: usize,
    pub(super) uses_claims: bool,
}

/// What a value is, as far as the static checks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The whole data (`.` at top level, `$`).
    Root,
    /// The whole claims map.
    Claims,
    /// Anything else.
    Value,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Field(String),
    Dot,
    Var(String),
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    col: usize,
    /// Whitespace precedes it (separates arguments; no space chains fields).
    spaced: bool,
}

enum Item {
    Text(String),
    Action { tokens: Vec<Token>, col: usize },
}

fn err(col: usize, kind: CompileErrorKind) -> CompileError {
    CompileError { column: col, kind }
}

fn syntax(col: usize, msg: impl Into<String>) -> CompileError {
    err(col, CompileErrorKind::Syntax(msg.into()))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits `src` into text and actions.
fn scan(src: &str) -> Result<Vec<Item>, CompileError> {
    let col = |off: usize| src[..off].chars().count() + 1;
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    while i < b.len() {
        let open = src[i..].find("{{").map(|p| p + i);
        let text_end = open.unwrap_or(b.len());
        let mut text = &src[i..text_end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(open) = open else {
            if !text.is_empty() {
                items.push(Item::Text(text.to_owned()));
            }
            break;
        };
        let mut k = open + 2;
        if b.get(k) == Some(&b'-') && b.get(k + 1).is_some_and(|c| is_space(*c)) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            k += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        if src[k..].starts_with("/*") {
            let end = src[k + 2..]
                .find("*/")
                .map(|p| p + k + 4)
                .ok_or_else(|| syntax(col(open), "unclosed comment"))?;
            if src[end..].starts_with("}}") {
                trim_next = false;
                i = end + 2;
            } else if src[end..].starts_with(" -}}") {
                trim_next = true;
                i = end + 4;
            } else {
                return Err(syntax(col(open), "comment ends before closing delimiter"));
            }
            continue;
        }
        let (tokens, next, trim) = lex_action(src, k, open, &col)?;
        items.push(Item::Action {
            tokens,
            col: col(open),
        });
        trim_next = trim;
        i = next;
    }
    Ok(items)
}

/// Tokens of one action starting at byte `k`; returns them, the byte after
/// `}}` and whether a `-}}` trim marker closed it.
fn lex_action(
    src: &str,
    mut k: usize,
    start: usize,
    col: &dyn Fn(usize) -> usize,
) -> Result<(Vec<Token>, usize, bool), CompileError> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut spaced = true;
    loop {
        let Some(&c) = b.get(k) else {
            return Err(syntax(col(start), "unclosed action"));
        };
        if is_space(c) {
            let mut j = k;
            while b.get(j).is_some_and(|c| is_space(*c)) {
                j += 1;
            }
            if src[j..].starts_with("-}}") {
                return Ok((tokens, j + 3, true));
            }
            spaced = true;
            k = j;
            continue;
        }
        if src[k..].starts_with("}}") {
            return Ok((tokens, k + 2, false));
        }
        let at = col(k);
        let ident_len = |from: usize| {
            src[from..]
                .char_indices()
                .find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_'))
                .map_or(src.len() - from, |(p, _)| p)
        };
        let (tok, len) = match c {
            b'.' => {
                let n = ident_len(k + 1);
                if n == 0 {
                    (Tok::Dot, 1)
                } else if b[k + 1].is_ascii_digit() {
                    let n = number_len(&b[k..]);
                    (Tok::Num(src[k..k + n].to_owned()), n)
                } else {
                    (Tok::Field(src[k + 1..k + 1 + n].to_owned()), n + 1)
                }
            }
            b'$' => {
                let n = ident_len(k + 1);
                (Tok::Var(src[k..k + 1 + n].to_owned()), n + 1)
            }
            b'"' => {
                let (s, n) = quoted(&src[k..]).ok_or_else(|| syntax(at, "bad string literal"))?;
                (Tok::Str(s), n)
            }
            b'`' => {
                let n = src[k + 1..]
                    .find('`')
                    .ok_or_else(|| syntax(at, "unclosed raw string"))?;
                (Tok::Str(src[k + 1..k + 1 + n].to_owned()), n + 2)
            }
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'|' => (Tok::Pipe, 1),
            b',' => (Tok::Comma, 1),
            b'=' => (Tok::Assign, 1),
            b':' if b.get(k + 1) == Some(&b'=') => (Tok::Declare, 2),
            b'-' | b'+' | b'0'..=b'9' => {
                let n = number_len(&b[k..]);
                if n == 0 {
                    return Err(syntax(at, "bad number"));
                }
                (Tok::Num(src[k..k + n].to_owned()), n)
            }
            _ if (c as char).is_alphabetic() || c == b'_' || c >= 0x80 => {
                let n = ident_len(k);
                if n == 0 {
                    return Err(syntax(at, "unexpected character"));
                }
                (Tok::Ident(src[k..k + n].to_owned()), n)
            }
            _ => return Err(syntax(at, "unexpected character")),
        };
        tokens.push(Token {
            tok,
            col: at,
            spaced,
        });
        spaced = false;
        k += len;
    }
}

/// Length of a decimal number literal at the start of `b` (0 if none).
fn number_len(b: &[u8]) -> usize {
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits_from = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if i == digits_from || (i == digits_from + 1 && b[digits_from] == b'.') {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_from = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > exp_from {
            i = j;
        }
    }
    i
}

/// A Go interpreted string literal at the start of `s`: its value and length.
fn quoted(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = it.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            v = v * 16 + it.next()?.1.to_digit(16)?;
                        }
                        out.push(char::from_u32(v)?);
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            v = v * 8 + it.next()?.1.to_digit(8)?;
                        }
                        out.push(char::from_u32(v).filter(|_| v < 256)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// Go builtins and keywords outside the subset, named in refusals.
const FORBIDDEN_WORDS: &[&str] = &[
    "define", "template", "block", "break", "continue", "call", "printf", "print", "println",
    "html", "js", "urlquery", "index", "slice", "len", "and", "or", "not", "eq", "ne", "lt", "le",
    "gt", "ge",
];

/// How a control action ended a list.
enum Stop {
    End,
    Else { tokens: Vec<Token>, col: usize },
    Eof,
}

struct Scope {
    vars: Vec<(String, usize)>,
}

struct Parser<'a> {
    items: std::vec::IntoIter<Item>,
    allowed: &'a ClaimAllowlist,
    scopes: Vec<Scope>,
    slots: usize,
    uses_claims: bool,
}

/// Parses and checks a template.
pub(super) fn parse(src: &str, allowed: &ClaimAllowlist) -> Result<Parsed, CompileError> {
    if src.len() > MAX_TEMPLATE_BYTES {
        return Err(err(1, CompileErrorKind::TooLarge));
    }
    let items = scan(src)?;
    let mut p = Parser {
        items: items.into_iter(),
        allowed,
        scopes: vec![Scope { vars: Vec::new() }],
        slots: 0,
        uses_claims: false,
    };
    let (nodes, stop) = p.list(Kind::Root, 0)?;
    match stop {
        Stop::Eof => Ok(Parsed {
            nodes,
            slots: p.slots,
            uses_claims: p.uses_claims,
        }),
        Stop::End => Err(syntax(1, "unexpected {{end}}")),
        Stop::Else { col, .. } => Err(syntax(col, "unexpected {{else}}")),
    }
}

impl Parser<'_> {
    /// Nodes up to `{{end}}`, `{{else}}` or the end of the source.
    fn list(&mut self, dot: Kind, depth: usize) -> Result<(Vec<Node>, Stop), CompileError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (tokens, col) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { tokens, col } => (tokens, col),
            };
            let Some(first) = tokens.first() else {
                return Err(syntax(col, "missing value for command"));
            };
            match &first.tok {
                Tok::Ident(w) if w == "end" => {
                    if tokens.len() > 1 {
                        return Err(syntax(col, "unexpected words after end"));
                    }
                    return Ok((nodes, Stop::End));
                }
                Tok::Ident(w) if w == "else" => {
                    return Ok((
                        nodes,
                        Stop::Else {
                            tokens: tokens[1..].to_vec(),
                            col,
                        },
                    ));
                }
                Tok::Ident(w) if matches!(w.as_str(), "if" | "with" | "range") => {
                    let kw = w.clone();
                    nodes.push(self.control(&kw, &tokens[1..], col, dot, depth + 1)?);
                }
                _ => {
                    let (pipe, declared) = self.pipeline(&tokens, col, dot, depth, true)?;
                    nodes.push(if declared {
                        Node::Set(pipe)
                    } else {
                        Node::Print(pipe)
                    });
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// An `if`/`with`/`range` block whose opening action's tokens after the
    /// keyword are `tokens`.
    fn control(
        &mut self,
        kw: &str,
        tokens: &[Token],
        col: usize,
        dot: Kind,
        depth: usize,
    ) -> Result<Node, CompileError> {
        if depth > MAX_NESTING {
            return Err(err(col, CompileErrorKind::TooLarge));
        }
        if tokens.is_empty() {
            return Err(syntax(col, format!("missing value for {kw}")));
        }
        self.scopes.push(Scope { vars: Vec::new() });
        let (pipe, _) = self.pipeline(tokens, col, dot, depth, true)?;
        if kw == "range" && pipe.vars.len() > 2 || kw != "range" && pipe.vars.len() > 1 {
            return Err(syntax(col, "too many declarations"));
        }
        let inner = if kw == "if" { dot } else { Kind::Value };
        self.scopes.push(Scope { vars: Vec::new() });
        let (body, stop) = self.list(inner, depth)?;
        self.scopes.pop();
        let other = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => {
                self.scopes.pop();
                return Err(syntax(col, format!("unclosed {{{{{kw}}}}}")));
            }
            Stop::Else { tokens, col: ecol } => {
                self.scopes.push(Scope { vars: Vec::new() });
                let other = match tokens.first().map(|t| &t.tok) {
                    None => match self.list(dot, depth)? {
                        (nodes, Stop::End) => nodes,
                        (_, Stop::Else { col, .. }) => {
                            return Err(syntax(col, "more than one {{else}}"));
                        }
                        (_, Stop::Eof) => return Err(syntax(ecol, "unclosed {{else}}")),
                    },
                    Some(Tok::Ident(w)) if w == "if" || w == "with" => {
                        let w = w.clone();
                        vec![self.control(&w, &tokens[1..], ecol, dot, depth + 1)?]
                    }
                    Some(_) => return Err(syntax(ecol, "unexpected words after else")),
                };
                self.scopes.pop();
                other
            }
        };
        self.scopes.pop();
        let branch = Box::new(Branch { pipe, body, other });
        Ok(match kw {
            "if" => Node::If(branch),
            "with" => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    /// A pipeline, with its declarations when `allow_decl`. Returns whether
    /// it declared or assigned variables. Declared variables go into the
    /// innermost scope.
    fn pipeline(
        &mut self,
        tokens: &[Token],
        col: usize,
        dot: Kind,
        depth: usize,
        allow_decl: bool,
    ) -> Result<(Pipe, bool), CompileError> {
        let mut rest = tokens;
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut assign = false;
        if allow_decl {
            if let Some(split) = decl_split(tokens) {
                let (decl, after) = tokens.split_at(split);
                assign = matches!(after[0].tok, Tok::Assign);
                for t in decl.iter().step_by(2) {
                    if let Tok::Var(name) = &t.tok {
                        if name == "$" {
                            return Err(syntax(t.col, "cannot assign to $"));
                        }
                        names.push((name.clone(), t.col));
                    }
                }
                rest = &after[1..];
            }
        }
        if rest.is_empty() {
            return Err(syntax(col, "missing value for command"));
        }
        let (cmds, kind) = self.commands(rest, col, dot, depth)?;
        let decl = !names.is_empty();
        if kind != Kind::Value {
            return Err(err(col, whole(kind)));
        }
        let mut vars = Vec::new();
        for (name, vcol) in names {
            if assign {
                let slot = self
                    .lookup(&name)
                    .ok_or_else(|| err(vcol, CompileErrorKind::UndefinedVariable(name.clone())))?;
                vars.push(slot);
            } else {
                let slot = self.slots;
                self.slots += 1;
                if let Some(scope) = self.scopes.last_mut() {
                    scope.vars.push((name, slot));
                }
                vars.push(slot);
            }
        }
        Ok((Pipe { vars, cmds }, decl))
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.vars.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, slot)| *slot)
    }

    /// Commands separated by `|` (at parenthesis depth 0) and the kind of
    /// the last one's value.
    fn commands(
        &mut self,
        tokens: &[Token],
        col: usize,
        dot: Kind,
        depth: usize,
    ) -> Result<(Vec<Cmd>, Kind), CompileError> {
        let mut parts: Vec<&[Token]> = Vec::new();
        let mut level = 0usize;
        let mut from = 0;
        for (i, t) in tokens.iter().enumerate() {
            match t.tok {
                Tok::LParen => level += 1,
                Tok::RParen => level = level.saturating_sub(1),
                Tok::Pipe if level == 0 => {
                    parts.push(&tokens[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&tokens[from..]);
        let mut cmds = Vec::new();
        let mut kind = Kind::Value;
        for (n, part) in parts.iter().enumerate() {
            let at = part.first().map_or(col, |t| t.col);
            if part.is_empty() {
                return Err(syntax(at, "missing command in pipeline"));
            }
            let piped = n > 0;
            let (cmd, k) = self.command(part, at, dot, depth, piped, kind)?;
            cmds.push(cmd);
            kind = k;
        }
        Ok((cmds, kind))
    }

    /// One command; `piped` when the previous command's value (of kind
    /// `input`) is appended as its last argument.
    fn command(
        &mut self,
        tokens: &[Token],
        col: usize,
        dot: Kind,
        depth: usize,
        piped: bool,
        input: Kind,
    ) -> Result<(Cmd, Kind), CompileError> {
        let mut i = 0;
        let mut terms = Vec::new();
        while i < tokens.len() {
            if i > 0 && !tokens[i].spaced && !matches!(tokens[i].tok, Tok::LParen) {
                return Err(syntax(tokens[i].col, "missing space between arguments"));
            }
            let (term, next) = self.term(tokens, i, dot, depth)?;
            terms.push((term, tokens[i].col));
            i = next;
        }
        let mut terms = terms.into_iter();
        let Some((first, fcol)) = terms.next() else {
            return Err(syntax(col, "empty command"));
        };
        match first {
            Term::Func(f) => {
                let args: Vec<(Term, usize)> = terms.collect();
                let given = args.len() + usize::from(piped);
                if given != f.arity() {
                    return Err(err(fcol, CompileErrorKind::Arity(f.name(), f.arity())));
                }
                if piped && input != Kind::Value {
                    return Err(err(fcol, whole(input)));
                }
                let mut ops = Vec::new();
                for (n, (t, acol)) in args.into_iter().enumerate() {
                    let (op, kind) = match t {
                        Term::Op(op, kind) => (op, kind),
                        Term::Func(g) => {
                            return Err(syntax(
                                acol,
                                format!("{} must be called in parentheses", g.name()),
                            ));
                        }
                    };
                    if f == Func::Get && n == 0 && kind == Kind::Claims {
                        ops.push(op);
                        continue;
                    }
                    if kind != Kind::Value {
                        return Err(err(acol, whole(kind)));
                    }
                    if f == Func::Get && n == 1 && matches!(ops.first(), Some(Operand::ClaimsMap)) {
                        match &op {
                            Operand::Lit(Value::String(k)) => self.claim_allowed(k, acol)?,
                            _ => {
                                return Err(syntax(acol, "get .Claims needs a quoted claim name"));
                            }
                        }
                    }
                    ops.push(op);
                }
                if f == Func::Get && piped && matches!(ops.first(), Some(Operand::ClaimsMap)) {
                    return Err(syntax(fcol, "get .Claims needs a quoted claim name"));
                }
                if matches!(ops.first(), Some(Operand::ClaimsMap)) && f != Func::Get {
                    return Err(err(fcol, whole(Kind::Claims)));
                }
                Ok((Cmd::Call(f, ops), Kind::Value))
            }
            Term::Op(op, kind) => {
                if piped || terms.next().is_some() {
                    return Err(syntax(fcol, "can't give argument to non-function"));
                }
                if let Operand::Lit(Value::Null) = op {
                    return Err(syntax(fcol, "nil is not a command"));
                }
                Ok((Cmd::Value(op), kind))
            }
        }
    }

    /// One argument starting at `tokens[i]`, with the fields chained to it;
    /// returns it and the index after it.
    fn term(
        &mut self,
        tokens: &[Token],
        i: usize,
        dot: Kind,
        depth: usize,
    ) -> Result<(Term, usize), CompileError> {
        let t = &tokens[i];
        let mut j = i + 1;
        let chain = |j: &mut usize| {
            let mut fields = Vec::new();
            while let Some(Token {
                tok: Tok::Field(f),
                spaced: false,
                ..
            }) = tokens.get(*j)
            {
                fields.push(f.clone());
                *j += 1;
            }
            fields
        };
        let term = match &t.tok {
            Tok::Dot => {
                if dot == Kind::Root {
                    return Err(err(t.col, whole(Kind::Root)));
                }
                Term::Op(Operand::Dot(Vec::new()), Kind::Value)
            }
            Tok::Field(f) => {
                let mut fields = vec![f.clone()];
                fields.extend(chain(&mut j));
                if dot == Kind::Root {
                    self.data(fields, t.col)?
                } else {
                    Term::Op(Operand::Dot(fields), Kind::Value)
                }
            }
            Tok::Var(name) if name == "$" => {
                let fields = chain(&mut j);
                if fields.is_empty() {
                    return Err(err(t.col, whole(Kind::Root)));
                }
                self.data(fields, t.col)?
            }
            Tok::Var(name) => {
                let slot = self
                    .lookup(name)
                    .ok_or_else(|| err(t.col, CompileErrorKind::UndefinedVariable(name.clone())))?;
                Term::Op(Operand::Var(slot, chain(&mut j)), Kind::Value)
            }
            Tok::Str(s) => Term::Op(Operand::Lit(Value::String(s.clone())), Kind::Value),
            Tok::Num(n) => Term::Op(Operand::Lit(number(n, t.col)?), Kind::Value),
            Tok::Ident(w) => match w.as_str() {
                "true" => Term::Op(Operand::Lit(Value::Bool(true)), Kind::Value),
                "false" => Term::Op(Operand::Lit(Value::Bool(false)), Kind::Value),
                "nil" => Term::Op(Operand::Lit(Value::Null), Kind::Value),
                "get" => Term::Func(Func::Get),
                "default" => Term::Func(Func::Default),
                "toJson" => Term::Func(Func::ToJson),
                other => {
                    let what = if FORBIDDEN_WORDS.contains(&other)
                        || matches!(other, "if" | "with" | "range" | "else" | "end")
                    {
                        other.to_owned()
                    } else {
                        format!("function {other:?}")
                    };
                    return Err(err(t.col, CompileErrorKind::Forbidden(what)));
                }
            },
            Tok::LParen => {
                if depth + 1 > MAX_NESTING {
                    return Err(err(t.col, CompileErrorKind::TooLarge));
                }
                let mut level = 1usize;
                let mut k = j;
                while k < tokens.len() {
                    match tokens[k].tok {
                        Tok::LParen => level += 1,
                        Tok::RParen => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
                if k >= tokens.len() {
                    return Err(syntax(t.col, "unclosed left paren"));
                }
                let inner = &tokens[j..k];
                if inner.is_empty() {
                    return Err(syntax(t.col, "missing value in parentheses"));
                }
                let (cmds, kind) = self.commands(inner, t.col, dot, depth + 1)?;
                j = k + 1;
                let fields = chain(&mut j);
                let pipe = Box::new(Pipe {
                    vars: Vec::new(),
                    cmds,
                });
                if kind == Kind::Claims && fields.is_empty() {
                    return Err(err(t.col, whole(kind)));
                }
                Term::Op(Operand::Sub(pipe, fields), Kind::Value)
            }
            Tok::RParen => return Err(syntax(t.col, "unexpected right paren")),
            Tok::Pipe | Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(syntax(t.col, "unexpected operator"));
            }
        };
        Ok((term, j))
    }

    /// A field chain rooted at the data.
    fn data(&mut self, fields: Vec<String>, col: usize) -> Result<Term, CompileError> {
        let mut it = fields.into_iter();
        let root = it.next().unwrap_or_default();
        let rest: Vec<String> = it.collect();
        let token = |f| Term::Op(Operand::Token(f, rest.clone()), Kind::Value);
        Ok(match root.as_str() {
            "AccessToken" => token(TokenField::Access),
            "IdToken" | "IDToken" => token(TokenField::Id),
            "RefreshToken" => token(TokenField::Refresh),
            "Claims" => {
                self.uses_claims = true;
                let mut rest = rest.into_iter();
                match rest.next() {
                    None => Term::Op(Operand::ClaimsMap, Kind::Claims),
                    Some(claim) => {
                        self.claim_allowed(&claim, col)?;
                        Term::Op(Operand::Claim(claim, rest.collect()), Kind::Value)
                    }
                }
            }
            _ => return Err(err(col, CompileErrorKind::UnknownField(root))),
        })
    }

    fn claim_allowed(&mut self, claim: &str, col: usize) -> Result<(), CompileError> {
        self.uses_claims = true;
        if self.allowed.allows(claim) {
            Ok(())
        } else {
            Err(err(
                col,
                CompileErrorKind::ClaimNotAllowed(claim.to_owned()),
            ))
        }
    }
}

enum Term {
    Op(Operand, Kind),
    Func(Func),
}

fn whole(kind: Kind) -> CompileErrorKind {
    CompileErrorKind::WholeData(match kind {
        Kind::Claims => ".Claims",
        _ => "the whole data ({{.}} or {{$}})",
    })
}

/// Where a declaration (`$a, $b :=` / `$a =`) ends, if `tokens` start with one.
fn decl_split(tokens: &[Token]) -> Option<usize> {
    let mut i = 0;
    loop {
        match tokens.get(i).map(|t| &t.tok) {
            Some(Tok::Var(_)) => {}
            _ => return None,
        }
        match tokens.get(i + 1).map(|t| &t.tok) {
            Some(Tok::Declare | Tok::Assign) => return Some(i + 1),
            Some(Tok::Comma) => i += 2,
            _ => return None,
        }
    }
}

/// A number literal as a JSON number.
fn number(n: &str, col: usize) -> Result<Value, CompileError> {
    let plain = n.strip_prefix('+').unwrap_or(n);
    if !plain.contains(['.', 'e', 'E']) {
        if let Ok(i) = plain.parse::<i64>() {
            return Ok(Value::from(i));
        }
    }
    plain
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| syntax(col, "bad number"))
}

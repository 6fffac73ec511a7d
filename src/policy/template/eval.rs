//! Evaluation of a compiled template against [`TemplateData`].
//!
//! Values are borrowed from the template and the data; nothing is copied but
//! the output and `toJson` results. Recursion follows the template's own
//! nesting (capped at compile time); loops count against
//! [`MAX_RANGE_ITERATIONS`]; output against
//! [`MAX_RENDERED_BYTES`](super::MAX_RENDERED_BYTES).

use serde_json::{Map, Value};

use super::gofmt;
use super::parse::{Branch, Cmd, Func, Node, Operand, Pipe, TokenField};
use super::{MAX_RANGE_ITERATIONS, RenderError, Template, TemplateData};

/// A value during evaluation.
#[derive(Clone, Debug)]
enum Val<'a> {
    /// Missing (Go's nil interface).
    Nil,
    /// A JSON value from the claims or a template constant.
    Json(&'a Value),
    /// A token.
    Str(&'a str),
    /// A computed string (`toJson`, `get` of a missing key).
    Own(String),
    /// A `range` index.
    Int(i64),
    /// The whole claims map (only as `get`'s first argument).
    Claims(&'a Map<String, Value>),
}

struct State<'a, 'o> {
    data: TemplateData<'a>,
    vars: Vec<Val<'a>>,
    iterations: usize,
    out: &'o mut String,
}

/// Renders `t` into `out`.
pub(super) fn render<'a>(
    t: &'a Template,
    data: &TemplateData<'a>,
    out: &mut String,
) -> Result<(), RenderError> {
    let mut s = State {
        data: *data,
        vars: vec![Val::Nil; t.slots],
        iterations: 0,
        out,
    };
    s.list(&t.nodes, &Val::Nil)
}

impl<'a> State<'a, '_> {
    fn list(&mut self, nodes: &'a [Node], dot: &Val<'a>) -> Result<(), RenderError> {
        for node in nodes {
            match node {
                Node::Text(t) => gofmt::push(self.out, t)?,
                Node::Print(p) => {
                    let v = self.pipe(p, dot)?;
                    self.print(&v)?;
                }
                Node::Set(p) => {
                    let v = self.pipe(p, dot)?;
                    self.bind(p, v);
                }
                Node::If(b) => {
                    let v = self.pipe(&b.pipe, dot)?;
                    let go = truth(&v);
                    self.bind(&b.pipe, v);
                    self.list(if go { &b.body } else { &b.other }, dot)?;
                }
                Node::With(b) => {
                    let v = self.pipe(&b.pipe, dot)?;
                    if truth(&v) {
                        self.bind(&b.pipe, v.clone());
                        self.list(&b.body, &v)?;
                    } else {
                        self.list(&b.other, dot)?;
                    }
                }
                Node::Range(b) => self.range(b, dot)?,
            }
        }
        Ok(())
    }

    fn bind(&mut self, p: &Pipe, v: Val<'a>) {
        if let Some(slot) = p.vars.first() {
            self.vars[*slot] = v;
        }
    }

    fn range(&mut self, b: &'a Branch, dot: &Val<'a>) -> Result<(), RenderError> {
        let v = self.pipe(&b.pipe, dot)?;
        let items: Vec<(Val<'a>, Val<'a>)> = match v {
            Val::Nil | Val::Json(Value::Null) => Vec::new(),
            Val::Json(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Val::Int(i as i64), Val::Json(e)))
                .collect(),
            Val::Json(Value::Object(m)) => {
                let mut e: Vec<_> = m.iter().collect();
                e.sort_unstable_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
                e.into_iter()
                    .map(|(k, v)| (Val::Str(k.as_str()), Val::Json(v)))
                    .collect()
            }
            _ => return Err(RenderError::RangeOverScalar),
        };
        if items.is_empty() {
            return self.list(&b.other, dot);
        }
        for (key, elem) in items {
            self.iterations += 1;
            if self.iterations > MAX_RANGE_ITERATIONS {
                return Err(RenderError::TooManyIterations);
            }
            match b.pipe.vars.as_slice() {
                [v] => self.vars[*v] = elem.clone(),
                [k, v] => {
                    self.vars[*k] = key;
                    self.vars[*v] = elem.clone();
                }
                _ => {}
            }
            self.list(&b.body, &elem)?;
        }
        Ok(())
    }

    fn pipe(&mut self, p: &'a Pipe, dot: &Val<'a>) -> Result<Val<'a>, RenderError> {
        let mut last: Option<Val<'a>> = None;
        for cmd in &p.cmds {
            last = Some(match cmd {
                Cmd::Value(op) => self.operand(op, dot)?,
                Cmd::Call(f, args) => {
                    let mut vals = Vec::with_capacity(args.len() + 1);
                    for a in args {
                        vals.push(self.operand(a, dot)?);
                    }
                    if let Some(prev) = last.take() {
                        vals.push(prev);
                    }
                    call(*f, vals)?
                }
            });
        }
        Ok(last.unwrap_or(Val::Nil))
    }

    fn operand(&mut self, op: &'a Operand, dot: &Val<'a>) -> Result<Val<'a>, RenderError> {
        let d = &self.data;
        let (start, fields) = match op {
            Operand::Dot(f) => (dot.clone(), f),
            Operand::Claim(c, f) => (d.claims.get(c).map_or(Val::Nil, Val::Json), f),
            Operand::ClaimsMap => return Ok(Val::Claims(d.claims)),
            Operand::Token(t, f) => {
                let s = match t {
                    TokenField::Access => d.access_token,
                    TokenField::Id => d.id_token,
                    TokenField::Refresh => d.refresh_token,
                };
                (Val::Str(s), f)
            }
            Operand::Var(slot, f) => (self.vars[*slot].clone(), f),
            Operand::Lit(v) => return Ok(Val::Json(v)),
            Operand::Sub(p, f) => (self.pipe(p, dot)?, f),
        };
        fields.iter().try_fold(start, |v, name| field(v, name))
    }

    fn print(&mut self, v: &Val<'a>) -> Result<(), RenderError> {
        match v {
            Val::Nil | Val::Claims(_) => Ok(()),
            Val::Json(j) => gofmt::print(self.out, j, false),
            Val::Str(s) => gofmt::push(self.out, s),
            Val::Own(s) => gofmt::push(self.out, s),
            Val::Int(i) => gofmt::push(self.out, &i.to_string()),
        }
    }
}

/// `.name` of a value, as Go's `missingkey=zero` on `map[string]any`.
fn field<'a>(v: Val<'a>, name: &str) -> Result<Val<'a>, RenderError> {
    match v {
        Val::Json(Value::Object(m)) | Val::Claims(m) => Ok(m.get(name).map_or(Val::Nil, Val::Json)),
        Val::Nil | Val::Json(Value::Null) => Err(RenderError::NilField),
        _ => Err(RenderError::NotAMap),
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truth(v: &Val<'_>) -> bool {
    match v {
        Val::Nil => false,
        Val::Json(j) => match j {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
        },
        Val::Str(s) => !s.is_empty(),
        Val::Own(s) => !s.is_empty(),
        Val::Int(i) => *i != 0,
        Val::Claims(m) => !m.is_empty(),
    }
}

fn is_empty_or_nil(v: &Val<'_>) -> bool {
    match v {
        Val::Nil | Val::Json(Value::Null) => true,
        Val::Json(Value::String(s)) => s.is_empty(),
        Val::Str(s) => s.is_empty(),
        Val::Own(s) => s.is_empty(),
        _ => false,
    }
}

fn call(f: Func, mut args: Vec<Val<'_>>) -> Result<Val<'_>, RenderError> {
    match f {
        Func::Get => {
            let key = args.pop();
            let map = args.pop();
            let key = match &key {
                Some(Val::Json(Value::String(k))) => k.as_str(),
                Some(Val::Str(k)) => k,
                Some(Val::Own(k)) => k.as_str(),
                _ => return Ok(Val::Own(String::new())),
            };
            Ok(match map {
                Some(Val::Json(Value::Object(m)) | Val::Claims(m)) => {
                    m.get(key).map_or(Val::Own(String::new()), Val::Json)
                }
                _ => Val::Own(String::new()),
            })
        }
        Func::Default => {
            let val = args.pop().unwrap_or(Val::Nil);
            let fallback = args.pop().unwrap_or(Val::Nil);
            Ok(if is_empty_or_nil(&val) { fallback } else { val })
        }
        Func::ToJson => {
            let mut s = String::new();
            match args.pop().unwrap_or(Val::Nil) {
                Val::Nil => gofmt::push(&mut s, "null")?,
                Val::Json(j) => gofmt::json(&mut s, j)?,
                Val::Str(t) => gofmt::json_str(&mut s, t)?,
                Val::Own(t) => gofmt::json_str(&mut s, &t)?,
                Val::Int(i) => gofmt::push(&mut s, &i.to_string())?,
                Val::Claims(_) => gofmt::push(&mut s, "{}")?,
            }
            Ok(Val::Own(s))
        }
    }
}

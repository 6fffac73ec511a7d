//! Header templates: the subset of Go `text/template` that traefikoidc's
//! `headers: [{name, value}]` accepts, compiled once and rendered per request.
//!
//! Owns the grammar (text, `{{ }}` actions with trim markers and comments,
//! field chains, variables, pipelines, `if`/`with`/`range` with `else`), the
//! static checks made at start-up (data roots `.Claims`, `.AccessToken`,
//! `.IdToken`/`.IDToken`, `.RefreshToken`; claim names on the allowlist; the
//! functions `get`, `default` and `toJson` only) and evaluation with Go's
//! printing rules. A template can never run away: nesting, template size,
//! range iterations and output size are capped, and evaluation has no
//! recursion beyond the template's own nesting. It must not do I/O or log
//! rendered values (they usually hold tokens).

mod eval;
mod gofmt;
#[cfg(test)]
mod golden;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Claims a template may name without `allowedClaims` (traefikoidc's list).
pub const DEFAULT_ALLOWED_CLAIMS: &[&str] = &[
    "email",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "groups",
    "roles",
    "internal_role",
    "role",
    "department",
    "organization",
    "realm_access",
    "resource_access",
    "oid",
    "tid",
    "upn",
    "hd",
    "picture",
    "locale",
    "zoneinfo",
    "phone_number",
    "email_verified",
    "updated_at",
];

/// Longest template source accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 4096;
/// Deepest nesting of `if`/`with`/`range` blocks and parentheses.
pub const MAX_NESTING: usize = 16;
/// Most `range` iterations in one rendering (all loops together).
pub const MAX_RANGE_ITERATIONS: usize = 1000;
/// Longest rendered value, in bytes (traefikoidc's header value limit).
pub const MAX_RENDERED_BYTES: usize = 8192;

/// The claims a template may name: traefikoidc's list plus `allowedClaims`.
#[derive(Clone, Debug)]
pub struct ClaimAllowlist(HashSet<String>);

impl ClaimAllowlist {
    /// The default list extended by `extra`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(extra: I) -> Self {
        let mut set: HashSet<String> = DEFAULT_ALLOWED_CLAIMS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        set.extend(extra.into_iter().map(Into::into));
        Self(set)
    }

    /// True when templates may name `claim`.
    pub fn allows(&self, claim: &str) -> bool {
        self.0.contains(claim)
    }
}

impl Default for ClaimAllowlist {
    fn default() -> Self {
        Self::new(std::iter::empty::<String>())
    }
}

/// Why a template is refused at start-up. `column` counts characters of the
/// template source from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct CompileError {
    /// Where in the template.
    pub column: usize,
    /// What is wrong.
    pub kind: CompileErrorKind,
}

/// The classes of [`CompileError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileErrorKind {
    /// The text is not a template (unclosed action, bad token, stray `end`).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A data field other than `.Claims`, `.AccessToken`, `.IdToken`,
    /// `.IDToken`, `.RefreshToken`.
    #[error(
        "unknown field .{0} (use .Claims.<name>, .AccessToken, .IdToken, .IDToken or .RefreshToken)"
    )]
    UnknownField(String),
    /// A claim that is not on the allowlist (`allowedClaims` extends it).
    #[error("claim {0:?} is not allowed (add it to allowedClaims)")]
    ClaimNotAllowed(String),
    /// An action or function outside the supported subset.
    #[error("{0} is not allowed in header templates")]
    Forbidden(String),
    /// The whole data or the whole claims map used as a value.
    #[error("{0} cannot be used as a value; name a field, e.g. .Claims.email")]
    WholeData(&'static str),
    /// A variable used before it is declared.
    #[error("undefined variable {0}")]
    UndefinedVariable(String),
    /// A function called with the wrong number of arguments.
    #[error("{0} takes {1} argument(s)")]
    Arity(&'static str, usize),
    /// Too long or too deeply nested.
    #[error("template too large or too deeply nested")]
    TooLarge,
}

/// Why one rendering produced no value (the header is then not sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A field of a missing (nil) value, as Go's "nil pointer evaluating".
    #[error("field of a missing value")]
    NilField,
    /// A field of something that is not a map.
    #[error("field of a value that is not a map")]
    NotAMap,
    /// `range` over something that is neither a list nor a map.
    #[error("range over a value that is not a list or map")]
    RangeOverScalar,
    /// More than [`MAX_RANGE_ITERATIONS`] iterations.
    #[error("too many range iterations")]
    TooManyIterations,
    /// More than [`MAX_RENDERED_BYTES`] of output.
    #[error("rendered value too long")]
    TooLong,
}

/// What a template can read.
#[derive(Clone, Copy, Debug)]
pub struct TemplateData<'a> {
    /// ID-token claims (cookie path) or access-token claims (bearer path).
    pub claims: &'a Map<String, Value>,
    /// The access token (the presented token on the bearer path).
    pub access_token: &'a str,
    /// The ID token (empty on the bearer path).
    pub id_token: &'a str,
    /// The refresh token (empty on the bearer path).
    pub refresh_token: &'a str,
}

/// A compiled header template.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<parse::Node>,
    slots: usize,
    uses_claims: bool,
}

impl Template {
    /// Parses and checks `source` against `allowed` claims.
    pub fn compile(source: &str, allowed: &ClaimAllowlist) -> Result<Self, CompileError> {
        let parsed = parse::parse(source, allowed)?;
        Ok(Self {
            nodes: parsed.nodes,
            slots: parsed.slots,
            uses_claims: parsed.uses_claims,
        })
    }

    /// True when rendering reads `.Claims`.
    pub fn uses_claims(&self) -> bool {
        self.uses_claims
    }

    /// Renders into `out` (cleared first). A missing claim renders as
    /// nothing, never as Go's `<no value>`.
    pub fn render_into(
        &self,
        data: &TemplateData<'_>,
        out: &mut String,
    ) -> Result<(), RenderError> {
        out.clear();
        eval::render(self, data, out)
    }

    /// Renders to a new string.
    pub fn render(&self, data: &TemplateData<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        self.render_into(data, &mut out)?;
        Ok(out)
    }
}

//! The pages a person sees from the gate itself: access denied, provider
//! unavailable, login failed, signed out, front-channel logout, and any
//! other error shown to a browser.
//!
//! Each page is a template with a small set of named variables
//! ([`Var`]): `{{name}}` inserts a value, always HTML-escaped;
//! `{{#name}}…{{/name}}` keeps its content only when the value is not empty,
//! `{{^name}}…{{/name}}` only when it is. The built-in templates are compiled
//! in; `customTemplatesDir` replaces all of them, and a missing or broken
//! file is refused at start-up with its name. A page carries its own
//! `Content-Security-Policy`: nothing may load, and only the exact
//! `<style>` blocks of its template apply (by hash), so a page works under
//! the strictest security headers and a value inserted into it cannot add
//! style or script.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderValue, StatusCode};

use super::GateSettings;
use super::decision::{Reply, html_escape};
use super::view::RequestView;

/// Longest template file accepted.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// The kinds of page, one template each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// 403: signed in, but not allowed.
    Forbidden,
    /// 502/503: the identity provider or the session store cannot answer.
    Unavailable,
    /// The login did not complete (refused code, bad callback, provider error, loop).
    LoginFailed,
    /// After logout, when there is nowhere else to go.
    LoggedOut,
    /// The front-channel logout answer (shown in the provider's frame).
    Frontchannel,
    /// Any other error shown to a browser.
    Error,
}

impl PageKind {
    /// Every kind, in the order of [`Pages`]' templates.
    pub const ALL: [PageKind; 6] = [
        PageKind::Forbidden,
        PageKind::Unavailable,
        PageKind::LoginFailed,
        PageKind::LoggedOut,
        PageKind::Frontchannel,
        PageKind::Error,
    ];

    /// The template's file name in `customTemplatesDir`.
    pub fn file_name(self) -> &'static str {
        match self {
            PageKind::Forbidden => "forbidden.html",
            PageKind::Unavailable => "unavailable.html",
            PageKind::LoginFailed => "login-failed.html",
            PageKind::LoggedOut => "logged-out.html",
            PageKind::Frontchannel => "frontchannel.html",
            PageKind::Error => "error.html",
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            PageKind::Forbidden => include_str!("../../deploy/templates/forbidden.html"),
            PageKind::Unavailable => include_str!("../../deploy/templates/unavailable.html"),
            PageKind::LoginFailed => include_str!("../../deploy/templates/login-failed.html"),
            PageKind::LoggedOut => include_str!("../../deploy/templates/logged-out.html"),
            PageKind::Frontchannel => include_str!("../../deploy/templates/frontchannel.html"),
            PageKind::Error => include_str!("../../deploy/templates/error.html"),
        }
    }

    fn index(self) -> usize {
        match self {
            PageKind::Forbidden => 0,
            PageKind::Unavailable => 1,
            PageKind::LoginFailed => 2,
            PageKind::LoggedOut => 3,
            PageKind::Frontchannel => 4,
            PageKind::Error => 5,
        }
    }
}

/// The variables a template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `title`: the page heading ("Access denied").
    Title,
    /// `message`: what happened, in a sentence.
    Message,
    /// `status`: the HTTP status code.
    Status,
    /// `request_id`: the request id to quote to support.
    RequestId,
    /// `user`: who is signed in (on a 403), else empty.
    User,
    /// `sign_in_url`: start a login (on a 403: as someone else) that returns here.
    SignInUrl,
    /// `sign_out_url`: the gate's logout address.
    SignOutUrl,
    /// `return_url`: the address the user asked for (path and query).
    ReturnUrl,
}

impl Var {
    /// Every variable.
    pub const ALL: [Var; 8] = [
        Var::Title,
        Var::Message,
        Var::Status,
        Var::RequestId,
        Var::User,
        Var::SignInUrl,
        Var::SignOutUrl,
        Var::ReturnUrl,
    ];

    /// The name written in templates.
    pub fn name(self) -> &'static str {
        match self {
            Var::Title => "title",
            Var::Message => "message",
            Var::Status => "status",
            Var::RequestId => "request_id",
            Var::User => "user",
            Var::SignInUrl => "sign_in_url",
            Var::SignOutUrl => "sign_out_url",
            Var::ReturnUrl => "return_url",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// The values of one page.
#[derive(Clone, Debug, Default)]
pub struct PageData {
    /// See [`Var::Title`].
    pub title: String,
    /// See [`Var::Message`].
    pub message: String,
    /// See [`Var::Status`].
    pub status: u16,
    /// See [`Var::RequestId`].
    pub request_id: String,
    /// See [`Var::User`].
    pub user: String,
    /// See [`Var::SignInUrl`].
    pub sign_in_url: String,
    /// See [`Var::SignOutUrl`].
    pub sign_out_url: String,
    /// See [`Var::ReturnUrl`].
    pub return_url: String,
}

impl PageData {
    fn get(&self, v: Var) -> std::borrow::Cow<'_, str> {
        match v {
            Var::Title => self.title.as_str().into(),
            Var::Message => self.message.as_str().into(),
            Var::Status => self.status.to_string().into(),
            Var::RequestId => self.request_id.as_str().into(),
            Var::User => self.user.as_str().into(),
            Var::SignInUrl => self.sign_in_url.as_str().into(),
            Var::SignOutUrl => self.sign_out_url.as_str().into(),
            Var::ReturnUrl => self.return_url.as_str().into(),
        }
    }
}

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct TemplateError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Var(Var),
    /// `{{#v}}` (shown when `v` is not empty) or `{{^v}}` (when it is).
    Section {
        var: Var,
        when_set: bool,
        body: Vec<Part>,
    },
}

#[derive(Debug)]
struct Template {
    parts: Vec<Part>,
    csp: HeaderValue,
    frameable_csp: HeaderValue,
}

/// The page templates in use. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Pages {
    templates: Arc<[Template; 6]>,
    custom: bool,
}

impl Default for Pages {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Pages {
    /// The built-in templates.
    pub fn builtin() -> Self {
        let parse = |k: PageKind| {
            // The built-in templates are tested to parse; a failure here
            // would be a bug caught by every test, so fall back to a bare page.
            parse(k.builtin()).unwrap_or_else(|_| Template {
                parts: vec![Part::Var(Var::Message)],
                csp: csp(&[], false),
                frameable_csp: csp(&[], true),
            })
        };
        Self {
            templates: Arc::new(PageKind::ALL.map(parse)),
            custom: false,
        }
    }

    /// The templates of `dir`: every [`PageKind::file_name`] must be there
    /// and parse.
    ///
    /// # Errors
    /// Every file that is missing, unreadable, too large or broken.
    pub fn from_dir(dir: &Path) -> Result<Self, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let mut found = Vec::new();
        for kind in PageKind::ALL {
            let file = dir.join(kind.file_name());
            let err = |message: String| TemplateError {
                file: file.clone(),
                message,
            };
            let text = match std::fs::metadata(&file) {
                Ok(m) if m.len() > MAX_TEMPLATE_BYTES as u64 => {
                    errors.push(err(format!("larger than {MAX_TEMPLATE_BYTES} bytes")));
                    continue;
                }
                Ok(_) => std::fs::read_to_string(&file),
                Err(e) => Err(e),
            };
            match text.map_err(|e| err(format!("cannot read: {e}"))) {
                Ok(t) => match parse(&t) {
                    Ok(tpl) => found.push(tpl),
                    Err(m) => errors.push(err(m)),
                },
                Err(e) => errors.push(e),
            }
        }
        let templates: [Template; 6] = match found.try_into() {
            Ok(t) if errors.is_empty() => t,
            _ => return Err(errors),
        };
        Ok(Self {
            templates: Arc::new(templates),
            custom: true,
        })
    }

    /// True when the templates came from `customTemplatesDir`.
    pub fn is_custom(&self) -> bool {
        self.custom
    }

    /// Renders `kind` with `data`: the HTML and its
    /// `Content-Security-Policy` (`frameable` allows any frame ancestor).
    pub fn render(
        &self,
        kind: PageKind,
        data: &PageData,
        frameable: bool,
    ) -> (String, HeaderValue) {
        let t = &self.templates[kind.index()];
        let mut out = String::with_capacity(2048);
        render_parts(&t.parts, data, &mut out);
        let csp = if frameable {
            t.frameable_csp.clone()
        } else {
            t.csp.clone()
        };
        (out, csp)
    }
}

/// The request id header (set by the listener before the gate sees the request).
const REQUEST_ID_HEADER: &str = "x-request-id";

/// The heading of a page of `kind`.
fn title(kind: PageKind, status: StatusCode) -> &'static str {
    match kind {
        PageKind::Forbidden => "Access denied",
        PageKind::Unavailable => "Temporarily unavailable",
        PageKind::LoginFailed => "Sign-in did not complete",
        PageKind::LoggedOut | PageKind::Frontchannel => "You are signed out",
        PageKind::Error => status.canonical_reason().unwrap_or("Error"),
    }
}

/// The address the user asked for: the request's own, or `/` when the
/// request is one of the gate's endpoints (the callback's used `code` is
/// never offered again).
fn return_url(settings: &GateSettings, view: &RequestView, kind: PageKind) -> String {
    let target = &settings.post_logout_redirect;
    if kind == PageKind::LoggedOut && target.starts_with('/') && !target.starts_with("//") {
        return target.clone();
    }
    let own = [
        Some(settings.callback_path.as_str()),
        Some(settings.logout_path.as_str()),
        Some(super::SIGN_OUT_PATH),
        Some(super::START_PATH),
        settings.frontchannel_path.as_deref(),
    ];
    if own.contains(&Some(view.path.as_str())) {
        "/".into()
    } else {
        view.path_and_query()
    }
}

/// `/oauth2/start` returning to `rd`, asking the provider to show its login
/// form again when `prompt_login`.
pub(super) fn sign_in_url(rd: &str, prompt_login: bool) -> String {
    let mut url = format!(
        "{}?rd={}",
        super::START_PATH,
        url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
    );
    if prompt_login {
        url.push_str("&prompt=login");
    }
    url
}

/// The HTML reply of `kind` for `view`.
pub(super) fn page(
    settings: &GateSettings,
    view: &RequestView,
    kind: PageKind,
    status: StatusCode,
    message: &str,
    user: &str,
) -> Reply {
    let return_url = return_url(settings, view, kind);
    let data = PageData {
        title: title(kind, status).to_owned(),
        message: message.to_owned(),
        status: status.as_u16(),
        request_id: view
            .headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        user: user.to_owned(),
        sign_in_url: sign_in_url(&return_url, kind == PageKind::Forbidden),
        sign_out_url: settings.logout_path.clone(),
        return_url,
    };
    let frameable = kind == PageKind::Frontchannel;
    let (body, csp) = settings.pages.render(kind, &data, frameable);
    let mut reply = Reply::new(status, "text/html; charset=utf-8", body);
    reply
        .headers
        .insert(http::header::CONTENT_SECURITY_POLICY, csp);
    reply.frameable = frameable;
    reply
}

fn render_parts(parts: &[Part], data: &PageData, out: &mut String) {
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Var(v) => out.push_str(&html_escape(&data.get(*v))),
            Part::Section {
                var,
                when_set,
                body,
            } => {
                if data.get(*var).is_empty() != *when_set {
                    render_parts(body, data, out);
                }
            }
        }
    }
}

/// Parses a template and computes its policy.
fn parse(text: &str) -> Result<Template, String> {
    let styles = style_blocks(text)?;
    let mut stack: Vec<(Var, bool, Vec<Part>)> = Vec::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let (before, after) = rest.split_at(open);
        let current = stack.last_mut().map_or(&mut parts, |s| &mut s.2);
        if !before.is_empty() {
            current.push(Part::Text(before.to_owned()));
        }
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ at byte {}", text.len() - after.len()))?;
        let tag = after[2..close].trim();
        rest = &after[close + 2..];
        let var_of = |name: &str| {
            Var::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = Var::ALL.iter().map(|v| v.name()).collect();
                format!("unknown variable {name:?} (known: {})", known.join(", "))
            })
        };
        if let Some(name) = tag.strip_prefix('#') {
            stack.push((var_of(name)?, true, Vec::new()));
        } else if let Some(name) = tag.strip_prefix('^') {
            stack.push((var_of(name)?, false, Vec::new()));
        } else if let Some(name) = tag.strip_prefix('/') {
            let var = var_of(name)?;
            let (open_var, when_set, body) = stack
                .pop()
                .ok_or_else(|| format!("{{{{/{}}}}} closes no section", var.name()))?;
            if open_var != var {
                return Err(format!(
                    "{{{{/{}}}}} closes the section of {}",
                    var.name(),
                    open_var.name()
                ));
            }
            let section = Part::Section {
                var,
                when_set,
                body,
            };
            stack
                .last_mut()
                .map_or(&mut parts, |s| &mut s.2)
                .push(section);
        } else {
            let v = var_of(tag)?;
            stack
                .last_mut()
                .map_or(&mut parts, |s| &mut s.2)
                .push(Part::Var(v));
        }
    }
    if let Some((var, _, _)) = stack.last() {
        return Err(format!("section {} is never closed", var.name()));
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(Template {
        parts,
        csp: csp(&styles, false),
        frameable_csp: csp(&styles, true),
    })
}

/// The contents of the template's `<style>` elements, which must be fixed
/// text (their hashes go into the policy).
fn style_blocks(text: &str) -> Result<Vec<String>, String> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<style") {
        let start = from + i;
        let body_start = lower[start..]
            .find('>')
            .map(|j| start + j + 1)
            .ok_or("unclosed <style> tag")?;
        let end = lower[body_start..]
            .find("</style")
            .map(|j| body_start + j)
            .ok_or("<style> without </style>")?;
        let body = &text[body_start..end];
        if body.contains("{{") {
            return Err("a <style> element may not use variables".into());
        }
        out.push(body.to_owned());
        from = end;
    }
    Ok(out)
}

/// `default-src 'none'` with the hashes of `styles`, no base, no forms,
/// no framing unless `frameable`.
fn csp(styles: &[String], frameable: bool) -> HeaderValue {
    let mut policy = String::from("default-src 'none'; img-src data:");
    if !styles.is_empty() {
        policy.push_str("; style-src");
        for s in styles {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
            policy.push_str(" 'sha256-");
            policy.push_str(&base64::engine::general_purpose::STANDARD.encode(digest.as_ref()));
            policy.push('\'');
        }
    }
    policy.push_str("; base-uri 'none'; form-action 'none'");
    if !frameable {
        policy.push_str("; frame-ancestors 'none'");
    }
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn data() -> PageData {
        PageData {
            title: "Access denied".into(),
            message: "Not for you".into(),
            status: 403,
            request_id: "req-1".into(),
            user: "<script>alert(1)</script>@example.com".into(),
            sign_in_url: "/oauth2/start?rd=%2Fa&prompt=login".into(),
            sign_out_url: "/oauth2/sign_out".into(),
            return_url: "/a?x=\"><img src=x>".into(),
        }
    }

    #[test]
    fn every_builtin_page_parses_and_escapes_every_value() {
        for kind in PageKind::ALL {
            let t = parse(kind.builtin()).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let mut html = String::new();
            render_parts(&t.parts, &data(), &mut html);
            assert!(!html.contains("<script>"), "{kind:?}");
            assert!(!html.contains("<img"), "{kind:?}");
            assert!(html.contains("req-1"), "{kind:?}: request id shown");
            assert!(t.csp.to_str().unwrap().contains("'sha256-"), "{kind:?}");
        }
        let (html, _) = Pages::builtin().render(PageKind::Forbidden, &data(), false);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"));
        assert!(html.contains("/oauth2/start?rd=%2Fa&amp;prompt=login"));
        assert!(html.contains("/oauth2/sign_out"));
    }

    #[test]
    fn sections_follow_their_value() {
        let t = parse("a{{#user}}[{{user}}]{{/user}}{{^user}}nobody{{/user}}b").unwrap();
        let mut d = data();
        d.user = "x&y".into();
        let mut out = String::new();
        render_parts(&t.parts, &d, &mut out);
        assert_eq!(out, "a[x&amp;y]b");
        d.user.clear();
        out.clear();
        render_parts(&t.parts, &d, &mut out);
        assert_eq!(out, "anobodyb");
    }

    #[test]
    fn broken_templates_are_refused_with_the_reason() {
        for (text, want) in [
            ("{{nope}}", "unknown variable"),
            ("{{title", "unclosed"),
            ("{{#user}}x", "never closed"),
            ("{{/user}}", "closes no section"),
            ("{{#user}}{{/title}}", "closes the section of user"),
            ("<style>p{color:{{title}}}</style>", "may not use variables"),
            ("<style>p{}", "without </style>"),
        ] {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn the_policy_hashes_exactly_the_style_blocks() {
        let t = parse("<style>p{color:red}</style><p>{{title}}</p>").unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"p{color:red}");
        let want = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let csp = t.csp.to_str().unwrap().to_owned();
        assert!(csp.contains(&format!("style-src 'sha256-{want}'")), "{csp}");
        assert!(csp.starts_with("default-src 'none'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(
            !t.frameable_csp
                .to_str()
                .unwrap()
                .contains("frame-ancestors")
        );
    }
}

//! Template tests: the Go golden table, start-up refusals with their
//! columns, and the bounds that keep a rendering finite.

use serde_json::{Map, Value, json};

use super::golden::{GOLDEN, GOLDEN_CLAIMS};
use super::*;

fn allow() -> ClaimAllowlist {
    ClaimAllowlist::new([
        "ratio",
        "tiny",
        "small",
        "big",
        "mid",
        "zero",
        "neg",
        "nested",
        "nul",
        "empty",
        "custom-claim",
        "https://example.com/roles",
        "tab",
        "uni",
        "f",
        "missing",
    ])
}

fn data(claims: &Map<String, Value>) -> TemplateData<'_> {
    TemplateData {
        claims,
        access_token: "at-123",
        id_token: "id-456",
        refresh_token: "rt-789",
    }
}

#[test]
fn golden_table_matches_go() {
    let claims: Map<String, Value> = serde_json::from_str(GOLDEN_CLAIMS).unwrap();
    let mut failures = Vec::new();
    for (src, want) in GOLDEN {
        let t = match Template::compile(src, &allow()) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{src}: refused: {e}"));
                continue;
            }
        };
        let got = t.render(&data(&claims)).ok();
        if got.as_deref() != *want {
            failures.push(format!("{src}: got {got:?}, Go {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn documented_divergence_large_integers() {
    // Go prints a JSON integer claim of a million or more as a float64
    // (`1.7e+09`); oidcgate prints the integer as the token carries it.
    let claims = json!({"exp": 1_700_000_000u64, "iat": 1_000_000});
    let claims = claims.as_object().unwrap();
    let t = Template::compile("{{.Claims.exp}} {{.Claims.iat}}", &allow()).unwrap();
    assert_eq!(t.render(&data(claims)).unwrap(), "1700000000 1000000");
}

#[test]
fn refusals_name_column_and_kind() {
    use CompileErrorKind as K;
    type Case = (&'static str, usize, fn(&K) -> bool);
    let cases: &[Case] = &[
        ("{{.Claims.email", 1, |k| matches!(k, K::Syntax(_))),
        (
            "ab{{.Claims.secret}}",
            5,
            |k| matches!(k, K::ClaimNotAllowed(c) if c == "secret"),
        ),
        ("{{.Claims}}", 1, |k| matches!(k, K::WholeData(_))),
        ("{{.}}", 3, |k| matches!(k, K::WholeData(_))),
        ("{{$}}", 3, |k| matches!(k, K::WholeData(_))),
        ("{{toJson .Claims}}", 10, |k| matches!(k, K::WholeData(_))),
        (
            "{{.Password}}",
            3,
            |k| matches!(k, K::UnknownField(f) if f == "Password"),
        ),
        ("{{.claims.email}}", 3, |k| matches!(k, K::UnknownField(_))),
        (
            "x {{printf \"%s\" .AccessToken}}",
            5,
            |k| matches!(k, K::Forbidden(w) if w == "printf"),
        ),
        ("{{define \"x\"}}y{{end}}", 3, |k| {
            matches!(k, K::Forbidden(_))
        }),
        ("{{template \"x\"}}", 3, |k| matches!(k, K::Forbidden(_))),
        ("{{call .Claims.email}}", 3, |k| {
            matches!(k, K::Forbidden(_))
        }),
        ("{{index .Claims.groups 0}}", 3, |k| {
            matches!(k, K::Forbidden(_))
        }),
        ("{{range .Claims.groups}}{{break}}{{end}}", 27, |k| {
            matches!(k, K::Forbidden(_))
        }),
        ("{{lower .Claims.email}}", 3, |k| {
            matches!(k, K::Forbidden(_))
        }),
        ("{{range .Claims}}x{{end}}", 1, |k| {
            matches!(k, K::WholeData(_))
        }),
        ("{{with .Claims}}x{{end}}", 1, |k| {
            matches!(k, K::WholeData(_))
        }),
        ("{{get .Claims \"secret\"}}", 15, |k| {
            matches!(k, K::ClaimNotAllowed(_))
        }),
        ("{{get .Claims .Claims.email}}", 15, |k| {
            matches!(k, K::Syntax(_))
        }),
        ("{{$x}}", 3, |k| matches!(k, K::UndefinedVariable(_))),
        ("{{$x = .Claims.email}}", 3, |k| {
            matches!(k, K::UndefinedVariable(_))
        }),
        ("{{default \"a\"}}", 3, |k| {
            matches!(k, K::Arity("default", 2))
        }),
        ("{{.Claims.email .Claims.sub}}", 3, |k| {
            matches!(k, K::Syntax(_))
        }),
        ("{{if .Claims.email}}x", 1, |k| matches!(k, K::Syntax(_))),
        ("x{{end}}", 1, |k| matches!(k, K::Syntax(_))),
        ("{{else}}", 1, |k| matches!(k, K::Syntax(_))),
        ("{{\"unterminated}}", 3, |k| matches!(k, K::Syntax(_))),
        ("{{/* open }}", 1, |k| matches!(k, K::Syntax(_))),
        ("{{@}}", 3, |k| matches!(k, K::Syntax(_))),
    ];
    let mut failures = Vec::new();
    for (src, col, kind) in cases {
        match Template::compile(src, &ClaimAllowlist::default()) {
            Ok(_) => failures.push(format!("{src}: accepted")),
            Err(e) if !kind(&e.kind) || e.column != *col => {
                failures.push(format!("{src}: {e} (want column {col})"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn allowed_claims_extend_the_list() {
    let src = "{{.Claims.team}}";
    assert!(Template::compile(src, &ClaimAllowlist::default()).is_err());
    let t = Template::compile(src, &ClaimAllowlist::new(["team"])).unwrap();
    let claims = json!({"team": "blue"});
    assert_eq!(
        t.render(&data(claims.as_object().unwrap())).unwrap(),
        "blue"
    );
    assert!(t.uses_claims());
    let plain = Template::compile("Bearer {{.AccessToken}}", &allow()).unwrap();
    assert!(!plain.uses_claims());
}

#[test]
fn nesting_and_size_are_capped() {
    let deep = "{{if .Claims.email}}".repeat(MAX_NESTING + 1) + &"{{end}}".repeat(MAX_NESTING + 1);
    let e = Template::compile(&deep, &allow()).unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::TooLarge);
    let ok = "{{if .Claims.email}}".repeat(MAX_NESTING) + "x" + &"{{end}}".repeat(MAX_NESTING);
    assert!(Template::compile(&ok, &allow()).is_ok());
    let parens = "{{".to_owned()
        + &"(".repeat(MAX_NESTING + 1)
        + ".AccessToken"
        + &")".repeat(MAX_NESTING + 1)
        + "}}";
    assert_eq!(
        Template::compile(&parens, &allow()).unwrap_err().kind,
        CompileErrorKind::TooLarge
    );
    let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    assert_eq!(
        Template::compile(&long, &allow()).unwrap_err().kind,
        CompileErrorKind::TooLarge
    );
}

#[test]
fn rendering_is_bounded() {
    // 40 × 40 nested iterations pass the iteration cap.
    let list: Vec<Value> = (0..40).map(Value::from).collect();
    let claims = json!({"groups": list});
    let claims = claims.as_object().unwrap();
    let t = Template::compile(
        "{{range .Claims.groups}}{{range $.Claims.groups}}{{end}}{{end}}",
        &allow(),
    )
    .unwrap();
    assert_eq!(t.render(&data(claims)), Err(RenderError::TooManyIterations));
    // Output past the cap fails instead of growing.
    let big = json!({"name": "n".repeat(MAX_RENDERED_BYTES / 2)});
    let t = Template::compile("{{.Claims.name}}{{.Claims.name}}x", &allow()).unwrap();
    assert_eq!(
        t.render(&data(big.as_object().unwrap())),
        Err(RenderError::TooLong)
    );
    let t = Template::compile("{{toJson .Claims.name}}{{.Claims.name}}", &allow()).unwrap();
    assert_eq!(
        t.render(&data(big.as_object().unwrap())),
        Err(RenderError::TooLong)
    );
}

#[test]
fn missing_data_renders_empty_never_no_value() {
    let empty = Map::new();
    let d = TemplateData {
        claims: &empty,
        access_token: "",
        id_token: "",
        refresh_token: "",
    };
    for src in [
        "{{.Claims.email}}",
        "{{.RefreshToken}}",
        "{{with .Claims.groups}}{{.}}{{end}}",
        "{{range .Claims.groups}}{{.}}{{end}}",
        "{{get .Claims \"email\"}}",
    ] {
        let t = Template::compile(src, &allow()).unwrap();
        assert_eq!(t.render(&d).unwrap(), "", "{src}");
    }
}

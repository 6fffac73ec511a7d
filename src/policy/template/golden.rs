//! Golden table: header templates and what Go's `text/template` renders.
//!
//! Produced once (not part of the build or CI) by a small Go 1.19 program
//! that, for each template below, ran `template.New("h").Funcs(f).Option(
//! "missingkey=zero").Parse(src).Execute(buf, data)` with
//! `data = {"Claims": <GOLDEN_CLAIMS decoded by encoding/json into
//! map[string]interface{}>, "AccessToken": "at-123", "IdToken": "id-456",
//! "IDToken": "id-456", "RefreshToken": "rt-789"}` and `f` holding
//! traefikoidc's functions: `get(m, key)` (the entry of a
//! `map[string]interface{}`, else `""`), `default(d, v)` (`d` when `v` is nil
//! or `""`) and `toJson(v)` (`json.Marshal`, `""` on error). The expected
//! value is Go's output with every `<no value>` removed (as traefikoidc
//! does); `None` means Go's `Execute` returned an error (the header is then
//! not sent). Integer claims of a million or more are left out on purpose:
//! Go decodes them to float64 and prints `1.7e+09`, oidcgate prints the
//! integer (see `documented_divergence_large_integers`).

/// The claims every golden template is rendered against.
pub(super) const GOLDEN_CLAIMS: &str = r#"{
 "email": "alice@example.com",
 "name": "Alice <Admin> & \"co\"",
 "sub": "u-1",
 "groups": ["admin", "dev"],
 "roles": [],
 "realm_access": {"roles": ["r1", "r2"], "x": {"y": "z"}},
 "resource_access": {"app": {"roles": ["viewer"]}, "api": {"roles": []}},
 "email_verified": true,
 "iat": 42,
 "ratio": 1.5,
 "tiny": 0.00001,
 "small": 0.0001,
 "big": 1234567.5,
 "mid": 123456.7,
 "zero": 0,
 "neg": -2.25,
 "nested": {"a": [1, "b", null, true, {"k": "v"}], "n": null},
 "nul": null,
 "empty": "",
 "custom-claim": "dashy",
 "https://example.com/roles": ["x", "y"],
 "tab": "a\tb",
 "uni": "é\u2028ü",
 "f": false
}"#;

/// (template, Go's output or `None` for an execution error).
pub(super) const GOLDEN: &[(&str, Option<&str>)] = &[
    ("static value", Some("static value")),
    ("{{.Claims.email}}", Some("alice@example.com")),
    ("Bearer {{.AccessToken}}", Some("Bearer at-123")),
    ("{{.IdToken}}", Some("id-456")),
    ("{{.IDToken}}", Some("id-456")),
    ("{{.RefreshToken}}", Some("rt-789")),
    ("{{.Claims.name}}", Some("Alice <Admin> & \"co\"")),
    ("{{.Claims.groups}}", Some("[admin dev]")),
    ("{{.Claims.roles}}", Some("[]")),
    (
        "{{.Claims.realm_access}}",
        Some("map[roles:[r1 r2] x:map[y:z]]"),
    ),
    ("{{.Claims.realm_access.roles}}", Some("[r1 r2]")),
    ("{{.Claims.realm_access.x.y}}", Some("z")),
    (
        "{{.Claims.resource_access}}",
        Some("map[api:map[roles:[]] app:map[roles:[viewer]]]"),
    ),
    ("{{.Claims.email_verified}}", Some("true")),
    ("{{.Claims.iat}}", Some("42")),
    ("{{.Claims.ratio}}", Some("1.5")),
    ("{{.Claims.tiny}}", Some("1e-05")),
    ("{{.Claims.small}}", Some("0.0001")),
    ("{{.Claims.big}}", Some("1.2345675e+06")),
    ("{{.Claims.mid}}", Some("123456.7")),
    ("{{.Claims.zero}}", Some("0")),
    ("{{.Claims.neg}}", Some("-2.25")),
    (
        "{{.Claims.nested}}",
        Some("map[a:[1 b <nil> true map[k:v]] n:<nil>]"),
    ),
    ("{{.Claims.nul}}", Some("")),
    ("{{.Claims.empty}}", Some("")),
    ("{{.Claims.missing}}", Some("")),
    ("x{{.Claims.missing}}y", Some("xy")),
    ("{{.Claims.missing.deeper}}", None),
    ("{{.Claims.nul.deeper}}", None),
    ("{{.Claims.email.deeper}}", None),
    ("{{.Claims.realm_access.missing}}", Some("")),
    ("{{get .Claims \"custom-claim\"}}", Some("dashy")),
    (
        "{{get .Claims \"https://example.com/roles\"}}",
        Some("[x y]"),
    ),
    ("{{get .Claims \"missing\"}}", Some("")),
    ("{{get .Claims.realm_access \"roles\"}}", Some("[r1 r2]")),
    ("{{get .Claims.email \"x\"}}", Some("")),
    ("{{default \"none\" .Claims.missing}}", Some("none")),
    ("{{default \"none\" .Claims.empty}}", Some("none")),
    ("{{default \"none\" .Claims.nul}}", Some("none")),
    (
        "{{default \"none\" .Claims.email}}",
        Some("alice@example.com"),
    ),
    ("{{default \"none\" .Claims.zero}}", Some("0")),
    ("{{default \"none\" .Claims.f}}", Some("false")),
    ("{{.Claims.missing | default \"piped\"}}", Some("piped")),
    (
        "{{.Claims.email | default \"piped\"}}",
        Some("alice@example.com"),
    ),
    ("{{toJson .Claims.groups}}", Some("[\"admin\",\"dev\"]")),
    (
        "{{toJson .Claims.realm_access}}",
        Some("{\"roles\":[\"r1\",\"r2\"],\"x\":{\"y\":\"z\"}}"),
    ),
    (
        "{{toJson .Claims.name}}",
        Some("\"Alice \\u003cAdmin\\u003e \\u0026 \\\"co\\\"\""),
    ),
    (
        "{{toJson .Claims.nested}}",
        Some("{\"a\":[1,\"b\",null,true,{\"k\":\"v\"}],\"n\":null}"),
    ),
    ("{{toJson .Claims.ratio}}", Some("1.5")),
    ("{{toJson .Claims.tiny}}", Some("0.00001")),
    ("{{toJson .Claims.big}}", Some("1234567.5")),
    ("{{toJson .Claims.iat}}", Some("42")),
    ("{{toJson .Claims.missing}}", Some("null")),
    ("{{toJson .Claims.tab}}", Some("\"a\\tb\"")),
    ("{{toJson .Claims.uni}}", Some("\"é\\u2028ü\"")),
    ("{{toJson .AccessToken}}", Some("\"at-123\"")),
    ("{{.Claims.groups | toJson}}", Some("[\"admin\",\"dev\"]")),
    (
        "{{if .Claims.email}}has:{{.Claims.email}}{{end}}",
        Some("has:alice@example.com"),
    ),
    ("{{if .Claims.missing}}yes{{else}}no{{end}}", Some("no")),
    ("{{if .Claims.roles}}yes{{else}}no{{end}}", Some("no")),
    ("{{if .Claims.zero}}yes{{else}}no{{end}}", Some("no")),
    ("{{if .Claims.f}}yes{{else}}no{{end}}", Some("no")),
    (
        "{{if .Claims.empty}}yes{{else if .Claims.email}}email{{else}}none{{end}}",
        Some("email"),
    ),
    (
        "{{if .Claims.nul}}a{{else if .Claims.missing}}b{{else}}c{{end}}",
        Some("c"),
    ),
    (
        "{{with .Claims.realm_access}}{{.roles}}{{end}}",
        Some("[r1 r2]"),
    ),
    (
        "{{with .Claims.missing}}x{{else}}fallback{{end}}",
        Some("fallback"),
    ),
    (
        "{{with $r := .Claims.realm_access}}{{$r.x.y}}/{{.x.y}}{{end}}",
        Some("z/z"),
    ),
    (
        "{{range .Claims.groups}}[{{.}}]{{end}}",
        Some("[admin][dev]"),
    ),
    (
        "{{range $i, $g := .Claims.groups}}{{if $i}},{{end}}{{$g}}{{end}}",
        Some("admin,dev"),
    ),
    (
        "{{range $g := .Claims.groups}}{{$g}};{{end}}",
        Some("admin;dev;"),
    ),
    (
        "{{range .Claims.roles}}x{{else}}no roles{{end}}",
        Some("no roles"),
    ),
    (
        "{{range .Claims.missing}}x{{else}}none{{end}}",
        Some("none"),
    ),
    (
        "{{range $k, $v := .Claims.realm_access}}{{$k}}={{$v}} {{end}}",
        Some("roles=[r1 r2] x=map[y:z] "),
    ),
    (
        "{{range $k, $v := .Claims.resource_access}}{{$k}}:{{range $v.roles}}{{.}}{{else}}-{{end}} {{end}}",
        Some("api:- app:viewer "),
    ),
    (
        "{{range .Claims.nested.a}}<{{.}}>{{end}}",
        Some("<1><b><><true><map[k:v]>"),
    ),
    ("{{range .Claims.email}}x{{end}}", None),
    ("{{range .Claims.iat}}x{{end}}", None),
    ("{{$e := .Claims.email}}{{$e}}", Some("alice@example.com")),
    (
        "{{$e := .Claims.email}}{{$e = .Claims.sub}}{{$e}}",
        Some("u-1"),
    ),
    ("{{$.Claims.email}}", Some("alice@example.com")),
    (
        "{{with .Claims.realm_access}}{{$.Claims.sub}}:{{.roles}}{{end}}",
        Some("u-1:[r1 r2]"),
    ),
    ("  {{- .Claims.sub -}}  ", Some("u-1")),
    ("a {{- /* comment */ -}} b", Some("ab")),
    ("a{{/* c */}}b", Some("ab")),
    ("{{\"quoted\\tstr\"}}", Some("quoted\tstr")),
    ("{{`raw`}}", Some("raw")),
    ("{{3}}", Some("3")),
    ("{{1.5}}", Some("1.5")),
    ("{{true}}", Some("true")),
    ("{{(get .Claims \"custom-claim\")}}", Some("dashy")),
    ("{{(.Claims.realm_access).roles}}", Some("[r1 r2]")),
    (
        "{{default (get .Claims \"custom-claim\") .Claims.missing}}",
        Some("dashy"),
    ),
    (
        "{{.Claims.groups}}{{.Claims.email}}",
        Some("[admin dev]alice@example.com"),
    ),
    (
        "{{if .Claims.email_verified}}verified{{end}}",
        Some("verified"),
    ),
    (
        "{{range .Claims.nested.a}}{{with .}}{{.}}{{else}}nil{{end}} {{end}}",
        Some("1 b nil true map[k:v] "),
    ),
    ("{{.Claims.tab}}", Some("a\tb")),
];

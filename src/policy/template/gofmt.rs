//! Go's printing rules for JSON-decoded values: `fmt`'s `%v` (what a
//! template action prints) and `encoding/json`'s `Marshal` (what `toJson`
//! returns). Output is capped: every write fails once the buffer would pass
//! [`MAX_RENDERED_BYTES`](super::MAX_RENDERED_BYTES).

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::{MAX_RENDERED_BYTES, RenderError};

/// Appends `s`, failing when the output would grow past the cap.
pub(super) fn push(out: &mut String, s: &str) -> Result<(), RenderError> {
    if out.len() + s.len() > MAX_RENDERED_BYTES {
        return Err(RenderError::TooLong);
    }
    out.push_str(s);
    Ok(())
}

/// `%v` of a value. `nested` values print `null` as `<nil>`; at top level it
/// prints nothing (Go prints `<no value>`, which traefikoidc removes).
pub(super) fn print(out: &mut String, v: &Value, nested: bool) -> Result<(), RenderError> {
    match v {
        Value::Null => {
            if nested {
                push(out, "<nil>")?;
            }
            Ok(())
        }
        Value::Bool(b) => push(out, if *b { "true" } else { "false" }),
        Value::Number(n) => push(out, &number_v(n)),
        Value::String(s) => push(out, s),
        Value::Array(items) => {
            push(out, "[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    push(out, " ")?;
                }
                print(out, item, true)?;
            }
            push(out, "]")
        }
        Value::Object(map) => {
            push(out, "map[")?;
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    push(out, " ")?;
                }
                push(out, k)?;
                push(out, ":")?;
                print(out, v, true)?;
            }
            push(out, "]")
        }
    }
}

/// Entries of `map` by key, as Go's `fmt` and `encoding/json` order them.
fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries
}

/// Integers print exactly; other numbers as Go's `%v` of a float64.
fn number_v(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    float_g(f)
}

/// Shortest decimal digits of `f` (no sign, no leading zeros) and the
/// exponent of the first digit.
fn digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: `%e` when the exponent is
/// below -4 or at least 6 (Go's rule for the shortest form), `%f` otherwise.
pub(super) fn float_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let (d, exp) = digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        format!("{sign}{}", exp_form(&d, exp))
    } else {
        format!("{sign}{}", fixed_form(&d, exp))
    }
}

/// `d[0].d[1..]e±XX` with at least two exponent digits.
fn exp_form(d: &str, exp: i32) -> String {
    let mut s = String::new();
    s.push_str(&d[..1]);
    if d.len() > 1 {
        s.push('.');
        s.push_str(&d[1..]);
    }
    let _ = write!(s, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    s
}

/// The digits `d` with the decimal point after `exp + 1` of them.
fn fixed_form(d: &str, exp: i32) -> String {
    let point = exp + 1;
    if point <= 0 {
        format!("0.{}{d}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= d.len() {
        format!("{d}{}", "0".repeat(point as usize - d.len()))
    } else {
        let (a, b) = d.split_at(point as usize);
        format!("{a}.{b}")
    }
}

/// Go's `json.Marshal` of a number.
fn number_json(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 {
        return "0".to_owned();
    }
    let (d, exp) = digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        let mut s = exp_form(&d, exp);
        // Go writes e-07 as e-7 in JSON.
        if let Some(p) = s.find("e-0") {
            s.remove(p + 2);
        }
        format!("{sign}{s}")
    } else {
        format!("{sign}{}", fixed_form(&d, exp))
    }
}

/// Go's `json.Marshal` of a value (HTML-safe escaping, keys sorted).
pub(super) fn json(out: &mut String, v: &Value) -> Result<(), RenderError> {
    match v {
        Value::Null => push(out, "null"),
        Value::Bool(b) => push(out, if *b { "true" } else { "false" }),
        Value::Number(n) => push(out, &number_json(n)),
        Value::String(s) => json_str(out, s),
        Value::Array(items) => {
            push(out, "[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    push(out, ",")?;
                }
                json(out, item)?;
            }
            push(out, "]")
        }
        Value::Object(map) => {
            push(out, "{")?;
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    push(out, ",")?;
                }
                json_str(out, k)?;
                push(out, ":")?;
                json(out, v)?;
            }
            push(out, "}")
        }
    }
}

/// A JSON string as Go writes it: `<`, `>`, `&`, U+2028, U+2029 and control
/// characters as `\uXXXX` (lower-case hex), `\n`, `\r`, `\t`, `\b`, `\f`
/// short forms.
pub(super) fn json_str(out: &mut String, s: &str) -> Result<(), RenderError> {
    let mut buf = String::with_capacity(s.len() + 2);
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            '\u{8}' => buf.push_str("\\b"),
            '\u{c}' => buf.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
    push(out, &buf)
}

//! `Cookie` header parsing and `Set-Cookie` rendering.
//!
//! This file owns the wire syntax of cookies: splitting `Cookie` headers
//! into name/value pairs, removing pairs from a `Cookie` header, validating
//! cookie names and attribute values, and rendering `Set-Cookie` values with
//! the attributes every cookie of this module carries. It knows nothing about
//! which names belong to the codec or what the values mean, and must not log
//! cookie values.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use super::Error;

/// `name=value` pairs of every `Cookie` header in `headers`, in order.
///
/// Pairs are separated by `;`; whitespace around names and values is
/// ignored; a segment without `=` or with an empty name is skipped. Works on
/// bytes so that one foreign cookie with non-ASCII bytes cannot hide ours.
pub(crate) fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| split_pairs(value.as_bytes()))
}

/// The `;`-separated segments of a header, found with a vectorised search
/// (a session cookie header is kilobytes long with a handful of separators).
fn segments(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut ends = memchr::memchr_iter(b';', header).chain(std::iter::once(header.len()));
    let mut start = 0;
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let segment = header.get(start..end)?;
        start = end + 1;
        Some(segment)
    })
}

fn split_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    segments(header).filter_map(|segment| {
        let (name, value) = split_segment(segment)?;
        if name.is_empty() {
            return None;
        }
        Some((name, value))
    })
}

/// Splits one `name=value` segment, trimming both parts.
fn split_segment(segment: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = memchr::memchr(b'=', segment)?;
    let (name, rest) = segment.split_at(eq);
    Some((name.trim_ascii(), rest.get(1..)?.trim_ascii()))
}

/// The `Cookie` header `header` without the pairs whose name satisfies
/// `remove`, joined with `; `. `None` when nothing is left.
///
/// Segments that are not `name=value` pairs are kept as they are, since
/// they cannot be ours.
pub(crate) fn strip(header: &[u8], remove: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(header.len());
    for segment in segments(header) {
        let segment = segment.trim_ascii();
        if segment.is_empty() {
            continue;
        }
        if split_segment(segment).is_some_and(|(name, _)| remove(name)) {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(segment);
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `c` may appear in a cookie name (an HTTP token character).
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The fixed attributes of every cookie the codec sets.
#[derive(Debug, Clone)]
pub(crate) struct Attributes {
    /// `; Path=..; Domain=..; HttpOnly; SameSite=Lax`, rendered once.
    suffix: String,
}

impl Attributes {
    /// Renders the fixed attributes. `path` and `domain` must already be
    /// validated.
    pub(crate) fn new(path: &str, domain: Option<&str>) -> Self {
        let mut suffix = format!("; Path={path}");
        if let Some(domain) = domain {
            suffix.push_str("; Domain=");
            suffix.push_str(domain);
        }
        suffix.push_str("; HttpOnly; SameSite=Lax");
        Self { suffix }
    }

    /// Length of the longest `Set-Cookie` value for a cookie with a name of
    /// `name_len` bytes, a value of `value_len` bytes and a `Max-Age` of at
    /// most `max_age`.
    pub(crate) fn max_rendered_len(
        &self,
        name_len: usize,
        value_len: usize,
        max_age: u64,
    ) -> usize {
        name_len
            + 1
            + value_len
            + "; Max-Age=".len()
            + max_age.to_string().len()
            + self.suffix.len()
            + SECURE.len()
    }

    /// Renders a `Set-Cookie` value.
    pub(crate) fn render(
        &self,
        name: &str,
        value: &str,
        max_age: u64,
        secure: bool,
    ) -> Result<HeaderValue, Error> {
        let mut text =
            String::with_capacity(name.len() + value.len() + self.suffix.len() + SECURE.len() + 32);
        text.push_str(name);
        text.push('=');
        text.push_str(value);
        text.push_str("; Max-Age=");
        text.push_str(&max_age.to_string());
        text.push_str(&self.suffix);
        if secure {
            text.push_str(SECURE);
        }
        HeaderValue::try_from(text).map_err(|_| Error::Encode)
    }

    /// Renders a `Set-Cookie` value that deletes cookie `name`.
    pub(crate) fn render_expired(&self, name: &str, secure: bool) -> Result<HeaderValue, Error> {
        self.render(name, "", 0, secure)
    }
}

const SECURE: &str = "; Secure";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn pairs_from_several_headers() {
        let map = headers(&["a=1; b=2;c=3", "  d = 4 ;;e; =x; f=", "g=h=i"]);
        let got: Vec<(String, String)> = pairs(&map)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let want = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("f", ""),
            ("g", "h=i"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pairs_survive_non_ascii_foreign_cookie() {
        let mut map = HeaderMap::new();
        map.append(
            COOKIE,
            HeaderValue::from_bytes(b"x=\xff\xfe; ours=ok").unwrap(),
        );
        let got: Vec<_> = pairs(&map).collect();
        assert_eq!(got[1], (&b"ours"[..], &b"ok"[..]));
    }

    #[test]
    fn strip_table() {
        let remove = |n: &[u8]| n.starts_with(b"own");
        let table: [(&str, Option<&str>); 6] = [
            ("a=1; own1=x; b=2", Some("a=1; b=2")),
            ("own1=x;own2=y", None),
            ("", None),
            ("  a=1 ;  ;own=2;  flag ", Some("a=1; flag")),
            ("owner=1", None),
            ("x=own1", Some("x=own1")),
        ];
        for (input, want) in table {
            let got = strip(input.as_bytes(), remove).map(|v| String::from_utf8(v).unwrap());
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    #[test]
    fn token_chars() {
        for c in ['a', 'Z', '0', '_', '-', '.', '~', '!'] {
            assert!(is_token_char(c), "{c}");
        }
        for c in [' ', ';', '=', ',', '"', '(', '/', '\t', 'é', '@'] {
            assert!(!is_token_char(c), "{c}");
        }
    }

    #[test]
    fn render_attributes() {
        let attrs = Attributes::new("/", None);
        let v = attrs.render("n", "v", 60, false).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "n=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"
        );
        let attrs = Attributes::new("/app", Some("example.org"));
        let v = attrs.render("n", "v", 60, true).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "n=v; Max-Age=60; Path=/app; Domain=example.org; HttpOnly; SameSite=Lax; Secure"
        );
        let v = attrs.render_expired("n", true).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "n=; Max-Age=0; Path=/app; Domain=example.org; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            attrs.max_rendered_len(1, 1, 60),
            "n=v; Max-Age=60; Path=/app; Domain=example.org; HttpOnly; SameSite=Lax; Secure".len()
        );
    }
}

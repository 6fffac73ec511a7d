//! The YAML document: parsing, finding the traefikoidc block in it, and the
//! `OIDCGATE_*` environment overlay.
//!
//! A block may be given as it is, under a `traefikoidc:` key (the plugin
//! block copied with its name), as a Kubernetes `Middleware`
//! (`spec.plugin.traefikoidc`), or as a whole Traefik dynamic-configuration
//! file (`http.middlewares.<name>.plugin.traefikoidc`, exactly one such
//! middleware). Must not: interpret the keys of the block.

use serde_norway::{Mapping, Value};

use super::raw::{ENV_KEYS, EnvKind, env_name};
use super::{ConfigError, bad};

/// The name of the plugin in Traefik's configuration.
const PLUGIN: &str = "traefikoidc";

/// Parses `text`, finds the block and overlays the environment.
pub(super) fn block(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Mapping, ConfigError> {
    let doc: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_norway::from_str(text).map_err(|e| bad("config", format!("not valid YAML: {e}")))?
    };
    let Value::Mapping(map) = doc else {
        return Err(bad(
            "config",
            "the file must be a mapping of keys to values",
        ));
    };
    let mut block = find_block(map)?;
    overlay_env(&mut block, env)?;
    Ok(block)
}

fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(key)
}

fn take_mapping(v: Value, path: &str) -> Result<Mapping, ConfigError> {
    match v {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        _ => Err(bad(path, "must be a mapping of keys to values")),
    }
}

/// The plugin block inside `map`, or `map` itself.
fn find_block(mut map: Mapping) -> Result<Mapping, ConfigError> {
    if map.len() == 1
        && let Some(v) = map.remove(PLUGIN)
    {
        return take_mapping(v, PLUGIN);
    }
    // A Kubernetes Middleware resource, or its spec / plugin part.
    for path in [&["spec", "plugin", PLUGIN][..], &["plugin", PLUGIN][..]] {
        if get(&map, path[0]).is_some() {
            let mut cur = Value::Mapping(map.clone());
            for k in path {
                cur = match cur {
                    Value::Mapping(mut m) => m.remove(*k).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                if cur.is_null() {
                    return Err(bad(
                        "config",
                        format!("expected the traefikoidc block at {}", path.join(".")),
                    ));
                }
            }
            return take_mapping(cur, &path.join("."));
        }
    }
    let Some(http) = map.remove("http") else {
        return Ok(map);
    };
    // A Traefik dynamic-configuration file.
    let expected = "expected a traefikoidc block, a `traefikoidc:` key, or a Traefik dynamic \
                    configuration with http.middlewares.<name>.plugin.traefikoidc";
    let middlewares = match http {
        Value::Mapping(mut h) => h.remove("middlewares"),
        _ => None,
    };
    let Some(Value::Mapping(middlewares)) = middlewares else {
        return Err(bad("http.middlewares", format!("not found: {expected}")));
    };
    let mut found = Vec::new();
    for (name, m) in middlewares {
        let block = match m {
            Value::Mapping(mut m) => match m.remove("plugin") {
                Some(Value::Mapping(mut p)) => p.remove(PLUGIN),
                _ => None,
            },
            _ => None,
        };
        if let Some(b) = block {
            found.push((name.as_str().unwrap_or("?").to_owned(), b));
        }
    }
    match found.len() {
        1 => {
            let (name, b) = found.remove(0);
            take_mapping(b, &format!("http.middlewares.{name}.plugin.{PLUGIN}"))
        }
        0 => Err(bad(
            "http.middlewares",
            format!("no middleware uses the traefikoidc plugin: {expected}"),
        )),
        _ => Err(bad(
            "http.middlewares",
            format!(
                "{} middlewares use the traefikoidc plugin ({}); give oidcgate a file with one",
                found.len(),
                found
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Sets every key whose `OIDCGATE_*` variable is present.
fn overlay_env(map: &mut Mapping, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for (key, kind) in ENV_KEYS {
        let name = env_name(key);
        let Some(v) = env(&name) else {
            continue;
        };
        let value = match kind {
            EnvKind::Str => Value::String(v),
            EnvKind::Bool => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" | "" => Value::Bool(false),
                _ => return Err(bad(&name, format!("expected true or false, got {v:?}"))),
            },
            EnvKind::Int => Value::Number(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(&name, format!("expected a number, got {v:?}")))?
                    .into(),
            ),
            EnvKind::List => Value::Sequence(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
        };
        map.insert(Value::String((*key).to_owned()), value);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn found(text: &str) -> Result<Mapping, ConfigError> {
        block(text, &|_| None)
    }

    #[test]
    fn the_block_is_found_in_every_accepted_shape() {
        let shapes = [
            "clientID: web\n",
            "traefikoidc:\n  clientID: web\n",
            "plugin:\n  traefikoidc:\n    clientID: web\n",
            "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata: {name: oidc}\n\
             spec:\n  plugin:\n    traefikoidc:\n      clientID: web\n",
            "http:\n  routers: {}\n  middlewares:\n    headers: {headers: {}}\n    oidc:\n      \
             plugin:\n        traefikoidc:\n          clientID: web\n",
        ];
        for text in shapes {
            let m = found(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                m.get("clientID").and_then(Value::as_str),
                Some("web"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_wrapper_without_the_block_says_what_was_expected() {
        let cases = [
            ("http:\n  routers: {}\n", "http.middlewares"),
            (
                "http:\n  middlewares:\n    a: {headers: {}}\n",
                "http.middlewares",
            ),
            (
                "http:\n  middlewares:\n    a: {plugin: {traefikoidc: {}}}\n    b: {plugin: {traefikoidc: {}}}\n",
                "http.middlewares",
            ),
            ("spec:\n  plugin:\n    other: {}\n", "config"),
            ("- a\n- b\n", "config"),
            ("a: [\n", "config"),
        ];
        for (text, key) in cases {
            let e = found(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = found("http:\n  routers: {}\n").unwrap_err();
        assert!(e.message.contains("plugin.traefikoidc"), "{e}");
        let e = found(
            "http:\n  middlewares:\n    a: {plugin: {traefikoidc: {}}}\n    b: {plugin: {traefikoidc: {}}}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("a, b"), "{e}");
    }
}

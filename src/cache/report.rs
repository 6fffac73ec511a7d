//! What a Redis server says about itself, for `oidcgate check` and the
//! start-up log: version, how the gate reaches it, and whether its eviction
//! policy can drop the security marks (logouts, revocations, replay marks)
//! the gates share.
//!
//! Owns the reading of `INFO` and the judgement of `maxmemory-policy`;
//! asking Redis belongs to the backend.

use std::fmt;

/// What one `INFO` answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisReport {
    /// How the gate reaches Redis: `standalone`, `sentinel` or `cluster`.
    pub topology: &'static str,
    /// `redis_version` (or `valkey_version`), if given.
    pub version: Option<String>,
    /// `redis_mode` of the server that answered, if given.
    pub server_mode: Option<String>,
    /// `maxmemory_policy`, if given (managed services may hide it).
    pub maxmemory_policy: Option<String>,
}

impl RedisReport {
    /// Reads the fields of an `INFO` answer.
    pub fn from_info(topology: &'static str, info: &str) -> RedisReport {
        let field = |name: &str| {
            info.lines().find_map(|l| {
                let (k, v) = l.trim().split_once(':')?;
                (k == name).then(|| v.trim().to_owned())
            })
        };
        RedisReport {
            topology,
            version: field("valkey_version").or_else(|| field("redis_version")),
            server_mode: field("redis_mode").or_else(|| field("server_mode")),
            maxmemory_policy: field("maxmemory_policy"),
        }
    }

    /// A warning when the eviction policy can drop the gates' marks before
    /// they expire, else `None`.
    pub fn eviction_warning(&self) -> Option<String> {
        let policy = self.maxmemory_policy.as_deref()?;
        if policy.starts_with("allkeys-") {
            Some(format!(
                "maxmemory-policy {policy} lets Redis evict any key when memory is full, \
                 including logout, revocation and replay marks: a logged-out session or a \
                 revoked token could be accepted again by a replica that has not seen the \
                 mark; use noeviction (or a Redis of its own for the gates)"
            ))
        } else if policy.starts_with("volatile-") {
            Some(format!(
                "maxmemory-policy {policy} lets Redis evict keys that have a TTL when memory \
                 is full, and every logout, revocation and replay mark has one: such a mark \
                 could be dropped before it expires; use noeviction (or a Redis of its own \
                 for the gates)"
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for RedisReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        write!(
            f,
            "redis {} ({}, server mode {}), maxmemory-policy {}",
            or_unknown(&self.version),
            self.topology,
            or_unknown(&self.server_mode),
            or_unknown(&self.maxmemory_policy),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_and_judges_the_policy() {
        let info = "# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n\r\n# Memory\r\n\
                    used_memory:1000\r\nmaxmemory_policy:allkeys-lru\r\n";
        let r = RedisReport::from_info("sentinel", info);
        assert_eq!(r.version.as_deref(), Some("7.2.4"));
        assert_eq!(r.server_mode.as_deref(), Some("standalone"));
        assert_eq!(r.maxmemory_policy.as_deref(), Some("allkeys-lru"));
        assert_eq!(
            r.to_string(),
            "redis 7.2.4 (sentinel, server mode standalone), maxmemory-policy allkeys-lru"
        );
        // Table: policy, warned.
        for (policy, warned) in [
            ("allkeys-lru", true),
            ("allkeys-lfu", true),
            ("allkeys-random", true),
            ("volatile-lru", true),
            ("volatile-ttl", true),
            ("noeviction", false),
        ] {
            let r = RedisReport::from_info("standalone", &format!("maxmemory_policy:{policy}\n"));
            assert_eq!(r.eviction_warning().is_some(), warned, "{policy}");
        }
        let hidden = RedisReport::from_info("cluster", "redis_version:7.0.0\n");
        assert_eq!(hidden.eviction_warning(), None);
        assert!(hidden.to_string().ends_with("maxmemory-policy unknown"));
    }
}

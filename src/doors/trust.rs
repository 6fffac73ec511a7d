//! Which peers may speak for the client through `X-Forwarded-*`.
//!
//! Invariant: headers from a peer outside `trustedProxies` are ignored, never
//! partially believed. The default trusts loopback only, never "everyone".

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use ipnet::IpNet;

/// Networks trusted by default: loopback.
pub const DEFAULT_TRUSTED_PROXIES: &[&str] = &["127.0.0.0/8", "::1/128"];

/// A set of trusted networks. Cloning shares the list (every request's
/// service holds one).
#[derive(Clone, Debug)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl Default for TrustedProxies {
    fn default() -> Self {
        Self(
            DEFAULT_TRUSTED_PROXIES
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect::<Vec<IpNet>>()
                .into(),
        )
    }
}

impl TrustedProxies {
    /// Parses CIDRs or single addresses. Errors name the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for e in entries {
            let e = e.trim();
            let net = e
                .parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{e:?} is not an IP address or CIDR"))?;
            if net.prefix_len() == 0 {
                return Err(format!(
                    "{e:?} would trust every address; list your proxies instead"
                ));
            }
            out.push(net);
        }
        Ok(Self(out.into()))
    }

    /// True when `ip` is trusted.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address. From an untrusted `peer`: the peer. From a
    /// trusted one: walk `X-Forwarded-For` (every line, in order) from the
    /// right, skipping trusted proxies; the first other address is the
    /// client. An entry that is not an address (`unknown`, junk) stops the
    /// walk: the client is then the last trusted hop reached (or the peer),
    /// since nothing left of a bad entry can be vouched for — and nothing
    /// right of it is thrown away.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .flat_map(|v| v.split(','))
            .filter(|e| !e.trim().is_empty())
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_forwarded_for(entry) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port
/// (`1.2.3.4:80`, `[::1]:80`) or in brackets (`[::1]`).
pub fn parse_forwarded_for(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = e.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|v6| canonical(IpAddr::V6(v6)))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_trust_loopback_only() {
        let t = TrustedProxies::default();
        assert!(t.contains("127.0.0.1".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!t.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn parse_refuses_everyone_and_junk() {
        assert!(TrustedProxies::parse(&["0.0.0.0/0".into()]).is_err());
        assert!(TrustedProxies::parse(&["::/0".into()]).is_err());
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
        assert!(TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.5".into()]).is_ok());
    }

    #[test]
    fn client_ip_walks_forwarded_for_from_the_right() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.7".parse().unwrap(),
        );
        assert_eq!(
            t.client_ip("10.0.0.2".parse().unwrap(), &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            t.client_ip("9.9.9.9".parse().unwrap(), &h),
            "9.9.9.9".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", "junk".parse().unwrap());
        assert_eq!(
            t.client_ip("10.0.0.2".parse().unwrap(), &h),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn issue12_f10_one_bad_forwarded_for_entry_keeps_the_rest() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (xff, want) in [
            // Junk left of the client does not matter.
            ("junk, 1.2.3.4, 10.0.0.7", "1.2.3.4"),
            ("unknown, 1.2.3.4", "1.2.3.4"),
            // Junk right after trusted hops: the last trusted hop reached.
            ("1.2.3.4, junk, 10.0.0.7", "10.0.0.7"),
            ("1.2.3.4, junk", "10.0.0.2"),
            // Ports and brackets are addresses.
            ("1.2.3.4:5678, 10.0.0.7", "1.2.3.4"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:1.2.3.4", "1.2.3.4"),
            ("", "10.0.0.2"),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            assert_eq!(t.client_ip(peer, &h), ip(want), "{xff:?}");
        }
        // Several header lines form one list.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.append("x-forwarded-for", "junk".parse().unwrap());
        h.append("x-forwarded-for", "5.6.7.8, 10.1.1.1".parse().unwrap());
        assert_eq!(t.client_ip(peer, &h), ip("5.6.7.8"));
    }
}

//! Which peers may speak for the client through `X-Forwarded-*`.
//!
//! Invariant: headers from a peer outside `trustedProxies` are ignored, never
//! partially believed. The default trusts loopback only, never "everyone".

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Networks trusted by default: loopback.
pub const DEFAULT_TRUSTED_PROXIES: &[&str] = &["127.0.0.0/8", "::1/128"];

/// A set of trusted networks.
#[derive(Clone, Debug)]
pub struct TrustedProxies(Vec<IpNet>);

impl Default for TrustedProxies {
    fn default() -> Self {
        Self(
            DEFAULT_TRUSTED_PROXIES
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
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
        Ok(Self(out))
    }

    /// True when `ip` is trusted.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address: the right-most `X-Forwarded-For` entry that is not
    /// a trusted proxy, when `peer` is trusted; else `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return canonical(peer);
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else {
                return canonical(peer);
            };
            for part in v.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(canonical(ip)),
                    Err(_) => return canonical(peer),
                }
            }
        }
        hops.into_iter()
            .rev()
            .find(|ip| !self.contains(*ip))
            .unwrap_or(canonical(peer))
    }
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
}

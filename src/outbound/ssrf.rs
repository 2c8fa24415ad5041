//! SSRF guard for outbound webhooks: a destination is refused if ANY address
//! its host resolves to is loopback, private, link-local, CGNAT, benchmarking,
//! multicast, reserved, unspecified, in local-use NAT64 (`64:ff9b:1::/48`), or
//! an IPv4-mapped / IPv4-translated / NAT64 / 6to4 form of a refused IPv4
//! address — unless it lies in `RELEVO_OUTBOUND_ALLOW_NETS`. The HTTP client resolves through
//! `GuardedResolver`, so the addresses vetted are the ones connected to (no
//! second lookup that DNS rebinding could change).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

pub use crate::config::AllowNets;

/// Why a destination is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("{0} is a blocked address (loopback, private, link-local, CGNAT, benchmarking, multicast, reserved or unspecified)")]
    BlockedAddress(IpAddr),
    #[error("only https URLs are allowed (http only for allowlisted networks)")]
    InsecureScheme,
    #[error("the URL is not valid: {0}")]
    BadUrl(String),
    #[error("the host {0:?} does not resolve")]
    Unresolvable(String),
}

fn v4_blocked(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 CGNAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        // 198.18.0.0/15 is for benchmarking, and in practice often routed to
        // lab or internal networks rather than the internet.
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240 // reserved
}

/// Whether an address must never be a webhook destination.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_blocked(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return v4_blocked(v4);
            }
            let s = v6.segments();
            // Local-use NAT64 (RFC 8215) translates to whatever IPv4 network the
            // operator chose, internal ones included, and its prefix length
            // (hence where the IPv4 address sits) is not knowable from outside:
            // the whole /48 is refused.
            let local_nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1;
            local_nat64
                || v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (::ffff:0:0/96), IPv4-translated
/// (::ffff:0:0:0/96), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) or 6to4
/// (2002::/16) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // SIIT translators (RFC 6145) reach the IPv4 address behind this form.
    if s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        return Some(from(s[6], s[7]));
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    None
}

/// Vets one address against the guard and the allowlist.
pub fn vet(ip: IpAddr, allow: &AllowNets) -> Result<(), Refused> {
    if is_blocked(ip) && !allow.contains(ip) {
        return Err(Refused::BlockedAddress(ip));
    }
    Ok(())
}

/// Checks a subscription URL now (at creation): scheme, and every address its
/// host resolves to.
pub async fn check_url(raw: &str, allow: &AllowNets) -> Result<url::Url, Refused> {
    let url = url::Url::parse(raw).map_err(|e| Refused::BadUrl(e.to_string()))?;
    let host = url.host_str().ok_or_else(|| Refused::BadUrl("no host".into()))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = resolve(&host, port).await?;
    match url.scheme() {
        "https" => {}
        "http" if addrs.iter().all(|a| allow.contains(a.ip())) => {}
        "http" => return Err(Refused::InsecureScheme),
        other => return Err(Refused::BadUrl(format!("scheme {other:?} is not http(s)"))),
    }
    for a in &addrs {
        vet(a.ip(), allow)?;
    }
    Ok(url)
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| Refused::Unresolvable(host.into()))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolvable(host.into()));
    }
    Ok(addrs)
}

/// reqwest resolver that refuses blocked destinations at connection time.
pub struct GuardedResolver {
    pub allow: Arc<AllowNets>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (host, allow) = (name.as_str().to_owned(), self.allow.clone());
        Box::pin(async move {
            let addrs = resolve(&host, 0).await?;
            for a in &addrs {
                vet(a.ip(), &allow)?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_address_forms() {
        let blocked = [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "224.0.0.1",
            "0.0.0.0", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1",
            "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:7f00:1::",
            "2002:c0a8:101::1", "::127.0.0.1",
        ];
        for b in blocked {
            assert!(is_blocked(b.parse().unwrap()), "{b} must be blocked");
        }
        let public = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"];
        for p in public {
            assert!(!is_blocked(p.parse().unwrap()), "{p} is public");
        }
    }

    #[test]
    fn the_benchmarking_range_198_18_0_0_15_is_blocked_and_its_neighbours_are_not() {
        for b in ["198.18.0.0", "198.18.0.1", "198.19.255.255", "::ffff:198.18.0.1", "64:ff9b::c612:1", "2002:c613:101::"] {
            assert!(is_blocked(b.parse().unwrap()), "{b} must be blocked");
        }
        for p in ["198.17.255.255", "198.20.0.0"] {
            assert!(!is_blocked(p.parse().unwrap()), "{p} is public");
        }
    }

    #[test]
    fn local_use_nat64_64_ff9b_1_48_is_blocked_whatever_it_embeds() {
        // 8.8.8.8 embedded at /48 and /96, and an internal address: all refused,
        // since the translation depends on the operator's own network.
        for b in ["64:ff9b:1::", "64:ff9b:1:808:8:800::", "64:ff9b:1::808:808", "64:ff9b:1::a00:1", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"] {
            assert!(is_blocked(b.parse().unwrap()), "{b} must be blocked");
        }
        // Its neighbours are ordinary addresses.
        for p in ["64:ff9b:2::808:808", "64:ff9b:0:1::"] {
            assert!(!is_blocked(p.parse().unwrap()), "{p} is not local-use NAT64");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_by_the_ipv4_address_they_map() {
        // ::ffff:0:0/96: every IPv4 rule applies to its mapped form.
        for b in ["::ffff:0:0", "::ffff:0.0.0.1", "::ffff:7f00:1", "::ffff:a9fe:a9fe", "::ffff:100.64.0.1", "::ffff:255.255.255.255"] {
            assert!(is_blocked(b.parse().unwrap()), "{b} must be blocked");
        }
        assert!(!is_blocked("::ffff:808:808".parse().unwrap()));
    }

    #[test]
    fn ipv4_translated_addresses_are_judged_by_the_ipv4_address_they_embed() {
        // ::ffff:0:a.b.c.d (::ffff:0:0:0/96), which SIIT translators reach.
        for b in ["::ffff:0:7f00:1", "::ffff:0:a00:1", "::ffff:0:c612:1"] {
            assert!(is_blocked(b.parse().unwrap()), "{b} must be blocked");
        }
        assert!(!is_blocked("::ffff:0:808:808".parse().unwrap()));
    }

    #[test]
    fn the_allowlist_opens_exceptions() {
        let allow = AllowNets::parse("127.0.0.0/8, 10.9.0.0/16").unwrap();
        assert!(vet("127.0.0.1".parse().unwrap(), &allow).is_ok());
        assert!(vet("10.9.1.1".parse().unwrap(), &allow).is_ok());
        assert!(vet("10.8.1.1".parse().unwrap(), &allow).is_err());
        assert!(AllowNets::parse("not-a-net").is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_and_resolved_address() {
        let none = AllowNets::default();
        let local = AllowNets::parse("127.0.0.0/8").unwrap();
        assert_eq!(check_url("https://127.0.0.1/hook", &none).await.unwrap_err(), Refused::BlockedAddress("127.0.0.1".parse().unwrap()));
        // A hostname that resolves to loopback is refused too.
        assert!(matches!(check_url("https://localhost/hook", &none).await.unwrap_err(), Refused::BlockedAddress(_)));
        assert!(check_url("https://[::ffff:169.254.169.254]/", &none).await.is_err());
        assert_eq!(check_url("http://8.8.8.8/hook", &none).await.unwrap_err(), Refused::InsecureScheme);
        assert!(check_url("http://127.0.0.1:9000/hook", &local).await.is_ok());
        assert!(check_url("https://8.8.8.8/hook", &none).await.is_ok());
        assert!(matches!(check_url("ftp://8.8.8.8/", &none).await.unwrap_err(), Refused::BadUrl(_)));
    }
}

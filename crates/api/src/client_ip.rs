//! Who the client is, by address: the TCP peer, or — only when that peer is one of
//! `server.trusted_proxies` — the address the proxies report in `X-Forwarded-For`.
//!
//! The header is read from the right: each proxy appends the address it received the
//! request from, so the rightmost hop that is not itself a trusted proxy is the client, and
//! anything to its left was written by that client and proves nothing. From an untrusted
//! peer the header is ignored entirely, so nobody can pick their own rate-limit bucket.
//!
//! Budgets key IPv6 clients by their /64: one subscriber usually holds a whole /64 and could
//! otherwise use a fresh address for every request.

use std::net::IpAddr;

use axum::http::HeaderMap;
use brigade_core::settings::{IpNet, canonical_ip};

/// The header reverse proxies append the client address to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of a request, as resolved by [`resolve`]; set by the rate-limit
/// middleware for handlers that charge budgets of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

/// The client behind a request from `peer` carrying `headers`.
pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical_ip(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Several header lines form one list, in order (RFC 9110 §5.3).
    let hops: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A garbled hop cannot be attributed: the last proxy that wrote it is the client.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical_ip(addr.ip()));
    }
    None
}

/// The budget key of a client: the IPv4 address, or the /64 of an IPv6 one.
pub(crate) fn budget_key(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(FORWARDED_FOR, v.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        let h = headers(&["203.0.113.9"]);
        assert_eq!(
            resolve(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(resolve(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = [
            IpNet::parse("10.0.0.0/8").unwrap(),
            IpNet::parse("127.0.0.1").unwrap(),
        ];
        let h = headers(&["1.1.1.1, 203.0.113.9", "10.1.2.3"]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // Only proxies in the header: the leftmost of them.
        let h = headers(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted), ip("10.9.9.9"));
        // Garbage stops the walk at the last proxy that wrote a readable hop.
        let h = headers(&["203.0.113.9, junk, 10.1.1.1"]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted), ip("10.1.1.1"));
        // No header: the peer itself.
        assert_eq!(
            resolve(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        let h = headers(&["[2001:db8::1]:443", "192.0.2.1:80"]);
        assert_eq!(
            resolve(ip("::ffff:10.0.0.2"), &h, &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        assert_eq!(budget_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            budget_key(ip("2001:db8:1:2:ffff::9")),
            budget_key(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            budget_key(ip("2001:db8:1:3::1")),
            budget_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(budget_key(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(budget_key(ip("192.0.2.7")), "192.0.2.7");
    }
}

//! Address blocks in settings (`server.trusted_proxies`): [`IpNet`], an IPv4 or IPv6 network
//! written `10.0.0.0/8`, `2001:db8::/32` or a single address (`127.0.0.1` = `/32`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network of IP addresses: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR/PREFIX` or a bare address. Host bits set beyond the prefix are refused
    /// (`10.0.0.1/8` is more likely a typo than a network).
    ///
    /// # Errors
    /// A message saying what a network looks like.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let bad = || {
            format!(
                "`{text}` is not an IP network (examples: \"10.0.0.0/8\", \"127.0.0.1\", \
                 \"fd00::/8\")"
            )
        };
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        let net = IpNet { addr, prefix };
        if net.network() != addr {
            return Err(format!(
                "`{text}` has bits set after the /{prefix} prefix; write the network address \
                 (\"{}/{prefix}\")",
                net.network()
            ));
        }
        Ok(net)
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`)
    /// count as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(u32::from(net), self.prefix) == mask32(u32::from(ip), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(u128::from(net), self.prefix) == mask128(u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(mask32(u32::from(a), self.prefix).into()),
            IpAddr::V6(a) => IpAddr::V6(mask128(u128::from(a), self.prefix).into()),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; anything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn mask32(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask128(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(IpNet::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(IpNet::parse("1.2.3.4/32").unwrap().contains(ip("1.2.3.4")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "10.0.0.1/8",
            "1.2.3.4/x",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }
}

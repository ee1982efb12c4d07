//! Client addresses and networks: app passwords may be limited to source
//! networks (`--from 192.0.2.0/24`), matched against PAM_RHOST.

use std::net::IpAddr;

/// An address with a prefix length, e.g. `10.0.0.0/8`, `2001:db8::/32`, or a
/// single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("'{text}' is not an address or network (e.g. 192.0.2.0/24, 2001:db8::/32)");
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Whether the address has bits set past the prefix (`192.0.2.80/16`):
    /// most likely a typo for a single address.
    pub fn has_host_bits(&self) -> bool {
        let bits = match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
            IpAddr::V6(a) => u128::from(a),
        };
        // The address sits in the top bits: what the prefix does not cover
        // is left after shifting the prefix out.
        bits.checked_shl(u32::from(self.prefix)).unwrap_or(0) != 0
    }

    /// Wider than /16 (IPv4) or /48 (IPv6): more than one site's hosts.
    pub fn is_wide(&self) -> bool {
        self.prefix < if self.addr.is_ipv4() { 16 } else { 48 }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix.min(128)));
    a & mask == b & mask
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        let n = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(n.contains(ip("192.0.2.77")));
        assert!(n.contains(ip("::ffff:192.0.2.77")));
        assert!(!n.contains(ip("192.0.3.1")));
        assert!(!n.contains(ip("2001:db8::1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "1.2.3.4/33", "x/8", "1.2.3/8", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Where messages may go. A webhook lets an admin make the server send requests, so a target
//! on the server's own network (loopback, private, link-local, unique-local, CGNAT, multicast,
//! unspecified, and IPv4 written inside IPv6) is refused unless the server allows it: at
//! creation (an address in the URL, `localhost`; a name is resolved by the caller), and again
//! at delivery for every address a name resolves to, so that a name that later resolves
//! elsewhere (DNS rebinding) gains nothing.

use super::endpoint::MAX_URL_BYTES;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether private targets may be sent to (`--allow-private-webhook-targets`: for tests and
/// for receivers on the same network).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

impl TargetPolicy {
    pub fn allows(self, address: IpAddr) -> bool {
        self.allow_private || !address_is_private(address)
    }
}

/// A target URL: `http` or `https`, with a host, no credentials and no fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl(url::Url);

impl TargetUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_URL_BYTES {
            return Err(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the URL's scheme must be http or https".into());
        }
        if url.host().is_none() {
            return Err("the URL must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            // They would be shown back in every answer; a receiver checks the signature instead.
            return Err("the URL must not hold credentials (user:password@)".into());
        }
        if url.fragment().is_some() {
            return Err("the URL must not have a fragment (#...)".into());
        }
        if text.chars().any(char::is_control) {
            return Err("the URL must not hold control characters".into());
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host to resolve when it is a name (`None` for a literal address).
    pub fn host_name(&self) -> Option<&str> {
        match self.0.host()? {
            url::Host::Domain(name) => Some(name),
            _ => None,
        }
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(80)
    }

    /// The literal address the URL names, if it names one.
    pub fn literal_address(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(address) => Some(IpAddr::V4(address)),
            url::Host::Ipv6(address) => Some(IpAddr::V6(address)),
            url::Host::Domain(_) => None,
        }
    }

    /// Refuses what the URL alone shows to be private: a private literal address, or
    /// `localhost` (and its subdomains, which resolvers send to loopback too).
    pub fn check_literal_host(&self) -> Result<(), String> {
        if let Some(address) = self.literal_address() {
            if address_is_private(address) {
                return Err(format!(
                    "the target {address} is a loopback, private or link-local address; \
                     the server refuses those unless it runs with --allow-private-webhook-targets"
                ));
            }
        }
        if let Some(name) = self.host_name() {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(
                    "the target is localhost; the server refuses loopback, private and \
                     link-local targets unless it runs with --allow-private-webhook-targets"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// Whether an address is on a network the server should not send to on an admin's say-so:
/// anything but a global unicast address.
pub fn address_is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4_is_private(v4),
        IpAddr::V6(v6) => {
            // IPv4 written inside IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
            // 64:ff9b::a.b.c.d) is judged as the IPv4 address it carries.
            if let Some(v4) = embedded_v4(v6) {
                return v4_is_private(v4);
            }
            v6_is_private(v6)
        }
    }
}

fn v4_is_private(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    address.is_unspecified()                          // 0.0.0.0
        || a == 0                                     // 0.0.0.0/8 "this network"
        || address.is_loopback()                      // 127.0.0.0/8
        || address.is_private()                       // 10/8, 172.16/12, 192.168/16
        || address.is_link_local()                    // 169.254/16 (cloud metadata)
        || (a == 100 && (64..128).contains(&b))       // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && c == 0)             // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)             // 192.0.2.0/24 documentation
        || (a == 198 && (b == 18 || b == 19))         // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100)          // 198.51.100.0/24 documentation
        || (a == 203 && b == 0 && c == 113)           // 203.0.113.0/24 documentation
        || address.is_multicast()                     // 224/4
        || a >= 240 // 240/4 reserved, 255.255.255.255 broadcast
}

fn v6_is_private(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    address.is_unspecified()                          // ::
        || address.is_loopback()                      // ::1
        || (first & 0xfe00) == 0xfc00                 // fc00::/7 unique local
        || (first & 0xffc0) == 0xfe80                 // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0                 // fec0::/10 site-local (deprecated)
        || (first & 0xff00) == 0xff00                 // ff00::/8 multicast
        || first == 0x2001 && address.segments()[1] == 0x0db8 // 2001:db8::/32 documentation
        || first == 0x0100 && address.segments()[1..4] == [0, 0, 0] // 100::/64 discard
}

fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = address.segments();
    let v4 = || {
        let [.., a, b, c, d] = address.octets();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(mapped) = address.to_ipv4_mapped() {
        return Some(mapped);
    }
    // ::a.b.c.d (deprecated "compatible" form), but not :: or ::1.
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !address.is_unspecified() && !address.is_loopback() {
        return Some(v4());
    }
    // 64:ff9b::/96, the well-known NAT64 prefix.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(text: &str) -> bool {
        address_is_private(text.parse().unwrap())
    }

    #[test]
    fn private_ranges_are_refused_and_public_ones_allowed() {
        for address in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(private(address), "{address} must be refused");
        }
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!private(address), "{address} must be allowed");
        }
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        for (url, refused) in [
            ("https://example.com/hooks", false),
            ("http://127.0.0.1:8080/", true),
            ("http://[::1]/", true),
            ("http://[::ffff:7f00:1]/", true),
            ("http://localhost:9/", true),
            ("http://LOCALHOST./", true),
            ("http://api.localhost/", true),
            ("http://2130706433/", true), // 127.0.0.1 written as one number
            ("http://0x7f.1/", true),
            ("http://169.254.169.254/latest/meta-data", true),
        ] {
            let target = TargetUrl::parse(url).unwrap();
            assert_eq!(target.check_literal_host().is_err(), refused, "{url}");
        }
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "not a url",
            "https://",
        ] {
            assert!(TargetUrl::parse(url).is_err(), "{url}");
        }
    }
}

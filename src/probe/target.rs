//! `host:port` and `[v6addr]:port` targets, shared by wait-tcp and the URL-based commands.

use std::fmt;

/// A host (name, IPv4 or IPv6 literal) and a port between 1 and 65535.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port` or `[v6addr]:port`; the error names the bad value and what is wrong.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let invalid = |why: &str| format!("invalid target '{text}': {why}");
        let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("missing ']' after an IPv6 address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid(&format!("'{host}' is not an IPv6 address")));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| invalid("expected ':PORT' after ']'"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected HOST:PORT"))?;
            if host.contains(':') {
                return Err(invalid("write an IPv6 address in brackets, as [::1]:5432"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        if host.parse::<std::net::IpAddr>().is_err() && !is_host_name(host) {
            return Err(invalid(&format!("'{host}' is not a valid host name")));
        }
        Ok(HostPort {
            host: host.to_string(),
            port: parse_port(port).map_err(|why| invalid(&why))?,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A TCP port: 1 to 65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port '{text}' is not a number"));
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(format!("port {text} is out of range 1-65535")),
    }
}

/// Letters, digits, '-', '_' and '.' (underscores appear in SRV-style and some internal names).
fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, u16) {
        let parsed = HostPort::parse(text).unwrap();
        (parsed.host, parsed.port)
    }

    #[test]
    fn parses_names_v4_and_bracketed_v6() {
        assert_eq!(ok("db:5432"), ("db".into(), 5432));
        assert_eq!(
            ok("db.ns.svc.cluster.local.:5432"),
            ("db.ns.svc.cluster.local.".into(), 5432)
        );
        assert_eq!(ok("127.0.0.1:1"), ("127.0.0.1".into(), 1));
        assert_eq!(ok("[::1]:65535"), ("::1".into(), 65535));
        assert_eq!(ok("[fe80::1]:80"), ("fe80::1".into(), 80));
    }

    #[test]
    fn displays_v6_in_brackets() {
        assert_eq!(HostPort::parse("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert_eq!(HostPort::parse("db:80").unwrap().to_string(), "db:80");
    }

    #[test]
    fn rejects_malformed_targets_naming_them() {
        for bad in [
            "db",
            "db:",
            ":80",
            "db:0",
            "db:65536",
            "db:99999999999",
            "db:http",
            "::1:80",
            "[::1]80",
            "[::1:80",
            "[db]:80",
            "d b:80",
            "db:-1",
            "db:+80",
            "bad..name:80",
        ] {
            let err = HostPort::parse(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        assert!(
            HostPort::parse("db:0")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(HostPort::parse("::1:80").unwrap_err().contains("brackets"));
    }
}

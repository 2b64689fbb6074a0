//! The one place that maps a URI's scheme to its probe, for `initbox wait URI...`. Each probe's
//! options come from the URI's query parameters, under the names of its subcommand's flags.

use crate::probe::Probe;
use crate::probe::dns::{self, DnsOptions, DnsProbe};
use crate::probe::file::{self, FileProbe};
use crate::probe::grpc::{self, GrpcProbe};
use crate::probe::http::ready::{self as http, HttpOptions, HttpProbe};
use crate::probe::k8s::{self, K8sProbe};
use crate::probe::mysql::{MysqlOptions, MysqlProbe};
use crate::probe::pg::PgTarget;
use crate::probe::pg::ready::{PgProbe, PgReadyOptions};
use crate::probe::query::Query;
use crate::probe::redis::{RedisOptions, RedisProbe};
use crate::probe::target::HostPort;
use crate::probe::tcp::TcpProbe;
use crate::runtime::exit;
use crate::runtime::redact;

/// Every scheme `initbox wait` knows, as its error messages list them.
pub const SCHEMES: &[&str] = &[
    "tcp://",
    "postgres://",
    "postgresql://",
    "redis://",
    "rediss://",
    "http://",
    "https://",
    "dns:",
    "file://",
    "grpc://",
    "grpcs://",
    "mysql://",
    "mariadb://",
    "k8s:",
];

/// The probe for one URI. Errors are usage errors (exit 2) that never repeat a password.
pub fn parse(text: &str) -> anyhow::Result<Box<dyn Probe>> {
    if redact::has_misplaced_userinfo(text) {
        return Err(redact::misplaced_userinfo_error("URI"));
    }
    let shown = redact::url_text(text);
    let scheme = match text.split_once(':') {
        Some((scheme, _)) if !scheme.is_empty() && scheme.bytes().all(is_scheme_byte) => {
            scheme.to_ascii_lowercase()
        }
        _ => return Err(unknown_scheme(&shown, None)),
    };
    let (base, query) = text.split_once('?').unwrap_or((text, ""));
    let mut query = Query::new(&shown, query);
    let probe: Box<dyn Probe> = match scheme.as_str() {
        "tcp" => {
            let address = base["tcp:".len()..]
                .strip_prefix("//")
                .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
                .filter(|address| !address.contains('@'))
                .ok_or_else(|| exit::usage(format!("{shown}: expected tcp://HOST:PORT")))?;
            let target = HostPort::parse(address).map_err(exit::usage)?;
            query.finish(&[])?;
            Box::new(TcpProbe::new(target, text.to_string()))
        }
        "postgres" | "postgresql" => {
            let (options, mut connection) = PgReadyOptions::from_query(&mut query)?;
            connection.url = Some(with_query(base, query.rest()));
            Box::new(PgProbe::new(PgTarget::from_args(&connection)?, options))
        }
        "redis" | "rediss" => {
            let options = RedisOptions::from_query(&mut query)?;
            query.ignore_rest();
            Box::new(RedisProbe::new(base, options)?)
        }
        "http" | "https" => {
            let options = HttpOptions::from_query(&mut query)?;
            let url = http::parse_url(&with_query(base, query.rest())).map_err(exit::usage)?;
            let client = options.client()?;
            Box::new(HttpProbe::new(url, options, client))
        }
        "dns" => {
            let name = &base["dns:".len()..];
            if name.starts_with("//") {
                return Err(exit::usage(format!(
                    "{shown}: write dns:NAME (a server goes in ?nameserver=IP)"
                )));
            }
            let options = DnsOptions::from_query(&mut query)?;
            query.finish(dns::PARAMS)?;
            Box::new(DnsProbe::new(name, options, text.to_string())?)
        }
        "file" => {
            let url = parse_url(base, &shown)?;
            let probe = FileProbe::from_url(&url, &mut query)?;
            query.finish(file::PARAMS)?;
            Box::new(probe)
        }
        "grpc" | "grpcs" => {
            let url = parse_url(base, &shown)?;
            let probe = GrpcProbe::from_url(&url, &mut query)?;
            query.finish(grpc::PARAMS)?;
            Box::new(probe)
        }
        "mysql" | "mariadb" => Box::new(MysqlProbe::parse(text, MysqlOptions::default())?),
        "k8s" => {
            let probe = K8sProbe::from_uri(&base["k8s:".len()..], &mut query)?;
            query.finish(k8s::PARAMS)?;
            Box::new(probe)
        }
        other => return Err(unknown_scheme(&shown, Some(other))),
    };
    Ok(probe)
}

fn is_scheme_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.')
}

fn unknown_scheme(shown: &str, scheme: Option<&str>) -> anyhow::Error {
    let what = match scheme {
        Some(scheme) => format!("unknown scheme '{scheme}'"),
        None => "no scheme".to_string(),
    };
    exit::usage(format!(
        "{shown}: {what}; expected {} (host:port is tcp://host:port)",
        SCHEMES.join(" ")
    ))
}

fn with_query(base: &str, query: Option<String>) -> String {
    match query {
        Some(query) => format!("{base}?{query}"),
        None => base.to_string(),
    }
}

fn parse_url(text: &str, shown: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(text).map_err(|error| exit::usage(format!("{shown}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;

    fn error(text: &str) -> String {
        let error = parse(text)
            .err()
            .unwrap_or_else(|| panic!("{text} accepted"));
        assert_eq!(Exit::of(&error), Exit::Usage, "{text}: {error:#}");
        format!("{error:#}")
    }

    #[test]
    fn every_scheme_maps_to_its_probe_and_is_shown_without_secrets() {
        for (text, shown) in [
            ("tcp://db:5432", "tcp://db:5432"),
            ("TCP://[::1]:5432/", "TCP://[::1]:5432/"),
            (
                "postgres://app:S3CRET@db/app?read_write&sslmode=disable",
                "postgres://app:***@db:5432/app",
            ),
            (
                "redis://:S3CRET@cache:6380/2?role=master",
                "redis://:***@cache:6380/2",
            ),
            (
                "http://api:8080/health?status=200&body=UP&token=S3CRET",
                "http://api:8080/health?***",
            ),
            (
                "dns:etcd-headless?type=A&min=3",
                "dns:etcd-headless?type=A&min=3",
            ),
            ("file:///run/ready?nonempty", "file:///run/ready"),
            (
                "grpc://api:50051/orders.v1.Orders",
                "grpc://api:50051/orders.v1.Orders",
            ),
            (
                "mariadb://app:S3CRET@db/shop?read_write&fail_fast",
                "mariadb://app:***@db:3306/shop",
            ),
        ] {
            let probe = parse(text).unwrap_or_else(|error| panic!("{text}: {error:#}"));
            assert_eq!(probe.shown(), shown, "{text}");
        }
    }

    #[test]
    fn bad_uris_are_usage_errors_that_name_the_problem_not_the_secret() {
        for (text, named) in [
            ("db:5432", "unknown scheme 'db'"),
            ("just-a-name", "no scheme"),
            ("ftp://files/x", "unknown scheme 'ftp'"),
            ("tcp://db", "'db'"),
            ("tcp:db:1", "tcp://HOST:PORT"),
            ("tcp://u:S3CRET@db:1", "tcp://HOST:PORT"),
            ("tcp://db:1?x=1", "unknown parameter 'x'"),
            ("dns:db?type=MX", "'MX'"),
            ("dns:db?min=0", "invalid parameter 'min'"),
            ("dns:db?bogus", "expected type, min, nameserver"),
            ("dns://10.0.0.1/db", "nameserver"),
            ("file://host/x", "three slashes"),
            ("http://api/?status=9xx", "invalid parameter 'status'"),
            ("http://api/?insecure&cacert=/x", "exclude each other"),
            ("redis://:S3CRET@h/0?role=leader", "role 'leader'"),
            ("postgres://u:S3CRET@db/app?read_write=maybe", "read_write"),
            ("grpc://api", "port"),
            ("mysql://u:S3CRET@db/app?ssl-mode=sometimes", "ssl-mode"),
            ("mysql://u:12/S3CRET@db/app", "'@' after its host"),
        ] {
            let message = error(text);
            assert!(message.contains(named), "{text}: {message}");
            assert!(!message.contains("S3CRET"), "{text}: {message}");
        }
    }

    #[test]
    fn the_readmes_parameter_table_names_every_parameter() {
        let readme = include_str!("../../README.md");
        for (scheme, params) in [
            ("tcp://", &[][..]),
            ("postgres://", crate::probe::pg::ready::PARAMS),
            ("redis://", crate::probe::redis::PARAMS),
            ("http://", crate::probe::http::ready::PARAMS),
            ("dns:", dns::PARAMS),
            ("file://", file::PARAMS),
            ("grpc://", grpc::PARAMS),
            ("mysql://", crate::probe::mysql::PARAMS),
        ] {
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{scheme}` | ")))
                .unwrap_or_else(|| panic!("no README row for {scheme}"));
            for param in params {
                assert!(
                    row.contains(&format!("`{param}")),
                    "{scheme} {param}: {row}"
                );
            }
        }
    }

    #[test]
    fn initbox_parameters_are_taken_out_and_the_servers_own_kept() {
        let probe = parse("http://api/health?verbose=1&status=200-299").unwrap();
        assert_eq!(probe.shown(), "http://api/health?***");
        // The query sent is the server's part alone: visible through a bad value for it.
        assert!(parse("postgres://db/app?read_write&sslmode=bogus").is_err());
    }
}

//! dns:NAME and wait-dns: ready when a name resolves, through the resolver settings Kubernetes
//! gives the pod (/etc/resolv.conf: nameservers, search list, ndots), with no answer cache.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::future::LocalBoxFuture;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::probe::Probe;
use crate::probe::query::Query;
use crate::runtime::exit;
use crate::runtime::retry::AttemptError;

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What to ask for: wait-dns's flags, and a dns: URI's parameters.
#[derive(Debug, Clone, clap::Args)]
pub struct DnsOptions {
    /// Record type: A, AAAA, CNAME, SRV or TXT. Default: any address (A or AAAA).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_record_type)]
    pub record_type: Option<RecordType>,

    /// Ready only when at least N records answer (the pods behind a headless Service).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_min_records)]
    pub min_records: u32,

    /// Ask this server (IP or IP:PORT, repeatable) instead of the nameservers in /etc/resolv.conf;
    /// its search list and ndots still apply.
    #[arg(long, value_name = "IP[:PORT]", value_parser = parse_nameserver)]
    pub nameserver: Vec<SocketAddr>,
}

/// The parameters of a dns: URI, in the README's order.
pub const PARAMS: &[&str] = &["type", "min", "nameserver"];

impl DnsOptions {
    pub fn from_query(query: &mut Query) -> anyhow::Result<DnsOptions> {
        Ok(DnsOptions {
            record_type: query.parse(&["type"], parse_record_type)?,
            min_records: query
                .parse(&["min", "min_records"], parse_min_records)?
                .unwrap_or(1),
            nameserver: query
                .take_all(&["nameserver"])
                .iter()
                .map(|text| parse_nameserver(text).map_err(exit::usage))
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

pub struct DnsProbe {
    name: String,
    options: DnsOptions,
    config: ResolverConfig,
    resolver_options: ResolverOpts,
    shown: String,
}

impl DnsProbe {
    /// Reads /etc/resolv.conf now, once; a name that is not a DNS name is a usage error.
    pub fn new(name: &str, options: DnsOptions, shown: String) -> anyhow::Result<DnsProbe> {
        let name = parse_name(name).map_err(exit::usage)?;
        let (config, resolver_options) = resolver_settings(&options.nameserver)?;
        Ok(DnsProbe {
            name,
            options,
            config,
            resolver_options,
            shown,
        })
    }

    /// One attempt: a resolver built for this attempt alone (nothing survives to the next one).
    /// Returns the records, one per line as printed.
    pub async fn lookup(&self, budget: Duration) -> Result<Vec<String>, AttemptError> {
        let mut options = self.resolver_options.clone();
        options.timeout = budget;
        let resolver: TokioResolver =
            Resolver::builder_with_config(self.config.clone(), TokioRuntimeProvider::default())
                .with_options(options)
                .build()
                .context("building the resolver")
                .map_err(AttemptError::permanent)?;
        let name = self.name.as_str();
        let records: Vec<String> = match self.options.record_type {
            None => resolver
                .lookup_ip(name)
                .await
                .map_err(|error| AttemptError::transient(describe(error, "address")))?
                .iter()
                .map(|ip| ip.to_string())
                .collect(),
            Some(record_type) => resolver
                .lookup(name, record_type)
                .await
                .map_err(|error| {
                    AttemptError::transient(describe(error, &record_type.to_string()))
                })?
                .answers()
                .iter()
                .filter(|record| record.record_type() == record_type)
                .map(|record| record.data.to_string())
                .collect(),
        };
        let wanted = self.options.min_records;
        if records.len() < wanted as usize {
            return Err(AttemptError::transient(anyhow!(
                "{} of {wanted} records: {}",
                records.len(),
                records.join(", ")
            )));
        }
        Ok(records)
    }
}

impl Probe for DnsProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    fn check(&self, budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(async move { self.lookup(budget).await.map(drop) })
    }
}

/// Reads /etc/resolv.conf; with nameservers given its servers are replaced but its search list
/// and ndots kept, so a name resolves the way the app will resolve it.
fn resolver_settings(overrides: &[SocketAddr]) -> anyhow::Result<(ResolverConfig, ResolverOpts)> {
    let system = hickory_resolver::system_conf::read_system_conf();
    let (config, mut options) = match (system, overrides.is_empty()) {
        (Ok(settings), true) => settings,
        (Err(error), true) => {
            return Err(exit::usage(format!("cannot use {RESOLV_CONF}: {error}")));
        }
        (system, false) => {
            let (config, options) = system.unwrap_or_default();
            let servers = overrides
                .iter()
                .map(|server| nameserver_config(*server))
                .collect();
            let (domain, search, _) = config.into_parts();
            (ResolverConfig::from_parts(domain, search, servers), options)
        }
    };
    // Every attempt is a fresh question to the server: no positive or negative caching, and one
    // try per attempt because the retry loop does the retrying.
    options.cache_size = 0;
    options.attempts = 1;
    Ok((config, options))
}

fn nameserver_config(server: SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(server.ip());
    for connection in &mut config.connections {
        connection.port = server.port();
    }
    // A negative answer from this server is the answer; do not ask another one instead.
    config.trust_negative_responses = true;
    config
}

/// A short reason: the resolver's own text for NXDOMAIN is a debug dump of the query.
fn describe(error: NetError, what: &str) -> anyhow::Error {
    if error.is_nx_domain() {
        anyhow!("no such name (NXDOMAIN)")
    } else if error.is_no_records_found() {
        anyhow!("no {what} records")
    } else {
        anyhow!("{error}")
    }
}

pub fn parse_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.parse::<IpAddr>().is_ok() {
        return Err(format!("invalid name '{text}': expected a DNS name"));
    }
    Name::from_str(text)
        .map(|_| text.to_string())
        .map_err(|error| format!("invalid name '{text}': {error}"))
}

fn parse_record_type(text: &str) -> Result<RecordType, String> {
    match text.to_ascii_uppercase().as_str() {
        "A" => Ok(RecordType::A),
        "AAAA" => Ok(RecordType::AAAA),
        "CNAME" => Ok(RecordType::CNAME),
        "SRV" => Ok(RecordType::SRV),
        "TXT" => Ok(RecordType::TXT),
        _ => Err(format!(
            "unknown record type '{text}': expected A, AAAA, CNAME, SRV or TXT"
        )),
    }
}

fn parse_min_records(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("'{text}' is not a number of records (1 or more)")),
    }
}

fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("invalid nameserver '{text}': expected IP or IP:PORT ([v6addr]:PORT for IPv6)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_are_case_insensitive_and_limited() {
        assert_eq!(parse_record_type("srv"), Ok(RecordType::SRV));
        assert_eq!(parse_record_type("AAAA"), Ok(RecordType::AAAA));
        assert!(parse_record_type("MX").unwrap_err().contains("'MX'"));
    }

    #[test]
    fn nameservers_default_to_port_53() {
        assert_eq!(
            parse_nameserver("10.0.0.10"),
            Ok("10.0.0.10:53".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver("[::1]:5353"),
            Ok("[::1]:5353".parse().unwrap())
        );
        assert!(parse_nameserver("dns.local").is_err());
        assert!(parse_nameserver("10.0.0.1:99999").is_err());
    }

    #[test]
    fn names_must_be_dns_names() {
        assert!(parse_name("db.default.svc.cluster.local").is_ok());
        assert!(parse_name("db").is_ok());
        assert!(parse_name("").is_err());
        assert!(parse_name("10.0.0.1").is_err());
        assert!(parse_name("a..b").is_err());
        assert_eq!(parse_min_records("3"), Ok(3));
        assert!(parse_min_records("0").is_err());
    }
}

//! Parsing libpq connection strings: `postgres://` URLs, `key=value` conninfo, PG* variables.

use std::collections::BTreeMap;

use crate::runtime::exit;

/// The options initbox uses; others are accepted and ignored with a warning, since URLs shared
/// with other clients often carry their own (pgx's pool_max_conns, Prisma's schema).
const KNOWN: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "options",
];

/// The libpq variables and the option each stands for.
const ENV: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGAPPNAME", "application_name"),
    ("PGOPTIONS", "options"),
];

/// Connection options by libpq keyword. Its Debug output never shows the password.
#[derive(Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(key, value)| {
                (
                    key.as_str(),
                    if key == "password" {
                        "***"
                    } else {
                        value.as_str()
                    },
                )
            })
            .collect();
        shown.fmt(f)
    }
}

impl Params {
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Params {
        Params(
            ENV.iter()
                .filter_map(|(variable, key)| env(variable).map(|value| (key.to_string(), value)))
                .filter(|(_, value)| !value.is_empty())
                .collect(),
        )
    }

    /// Parses a URL (`postgres://` or `postgresql://`) or a conninfo string. Errors name what is
    /// wrong but never repeat the string, which may hold a password.
    pub fn parse(text: &str) -> anyhow::Result<Params> {
        let text = text.trim();
        if let Some(rest) = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
        {
            if crate::runtime::redact::has_misplaced_userinfo(text) {
                return Err(crate::runtime::redact::misplaced_userinfo_error(
                    "connection URL",
                ));
            }
            parse_url(rest)
        } else if text.contains('=') && !text.contains("://") {
            parse_conninfo(text)
        } else {
            Err(exit::usage(
                "the connection string is neither a postgres:// or postgresql:// URL nor key=value conninfo",
            ))
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Options in `other` replace those here.
    pub fn overlay(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    pub fn unknown_keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(String::as_str)
            .filter(|key| !KNOWN.contains(key))
            .collect()
    }
}

/// `[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`
fn parse_url(rest: &str) -> anyhow::Result<Params> {
    let mut params = BTreeMap::new();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".into(), decode(user, "user name")?);
            }
            if let Some(password) = password {
                params.insert("password".into(), decode(password, "password")?);
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let (mut names, mut ports) = (Vec::new(), Vec::new());
        for spec in hosts.split(',') {
            let (host, port) = split_host_port(spec)?;
            names.push(decode(host, "host")?);
            ports.push(port.unwrap_or("5432").to_string());
        }
        params.insert("host".into(), names.join(","));
        if hosts.contains(':') {
            params.insert("port".into(), ports.join(","));
        }
    }
    if !path.is_empty() {
        params.insert("dbname".into(), decode(path, "database name")?);
    }
    for (index, pair) in query.split('&').filter(|pair| !pair.is_empty()).enumerate() {
        // The pair itself is not repeated: a misplaced password would be.
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| exit::usage(format!("URL parameter {} is not key=value", index + 1)))?;
        let key = decode(key, "parameter name")?;
        let value = decode(value, "parameter value")?;
        params.insert(key, value);
    }
    Ok(Params(params))
}

/// `host`, `host:port` or `[v6]:port`, inside a URL.
fn split_host_port(spec: &str) -> anyhow::Result<(&str, Option<&str>)> {
    if let Some(bracketed) = spec.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| exit::usage("missing ']' after an IPv6 host in the URL"))?;
        return Ok((host, after.strip_prefix(':')));
    }
    Ok(match spec.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (spec, None),
    })
}

fn decode(text: &str, what: &str) -> anyhow::Result<String> {
    if text.split('%').skip(1).any(|after| {
        after
            .get(..2)
            .is_none_or(|hex| u8::from_str_radix(hex, 16).is_err())
    }) {
        return Err(exit::usage(format!("bad %-escape in the URL's {what}")));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(String::from)
        .map_err(|_| exit::usage(format!("the URL's {what} is not UTF-8")))
}

/// `key=value key='quoted \' value'`, as libpq reads it.
fn parse_conninfo(text: &str) -> anyhow::Result<Params> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    for position in 1.. {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // Named by position: a stray word could be a password.
            return Err(exit::usage(format!(
                "malformed conninfo: item {position} is not key=value"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(escaped) => value.push(escaped),
                        None => break,
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(exit::usage(format!(
                            "conninfo option '{key}' has an unterminated quoted value"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        params.insert(key, value);
    }
    Ok(Params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<(String, String)> {
        Params::parse(text).unwrap().0.into_iter().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            parsed(
                "postgres://app:p%40ss@db.ns.svc:6432/app_db?sslmode=require&application_name=x"
            ),
            pairs(&[
                ("application_name", "x"),
                ("dbname", "app_db"),
                ("host", "db.ns.svc"),
                ("password", "p@ss"),
                ("port", "6432"),
                ("sslmode", "require"),
                ("user", "app"),
            ])
        );
        assert_eq!(
            parsed("postgresql://[::1]:5433,db2/x"),
            pairs(&[("dbname", "x"), ("host", "::1,db2"), ("port", "5433,5432"),])
        );
        assert_eq!(
            parsed("postgres://%2Frun%2Fpg/x"),
            pairs(&[("dbname", "x"), ("host", "/run/pg")])
        );
        assert_eq!(parsed("postgres://"), pairs(&[]));
    }

    #[test]
    fn parses_conninfo_with_quotes_and_escapes() {
        assert_eq!(
            parsed(r"host=db  port = 5432 password='it\'s a secret' options='-c search_path=app'"),
            pairs(&[
                ("host", "db"),
                ("options", "-c search_path=app"),
                ("password", "it's a secret"),
                ("port", "5432"),
            ])
        );
    }

    #[test]
    fn errors_never_repeat_the_password() {
        for bad in [
            "postgres://u:p%zz@db/x",
            "host=db password='s3cret",
            "host=db s3cret",
            "s3cret",
        ] {
            let error = Params::parse(bad).unwrap_err().to_string();
            assert!(
                !error.contains("s3cret") && !error.contains("%zz"),
                "{bad}: {error}"
            );
        }
        let debug = format!("{:?}", Params::parse("host=db password=s3cret").unwrap());
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn env_variables_map_to_keywords_and_unknown_keys_are_listed() {
        let params = Params::from_env(|name| (name == "PGDATABASE").then(|| "app".to_string()));
        assert_eq!(params.get("dbname"), Some("app"));
        let params = Params::parse("postgres://db/x?pool_max_conns=5").unwrap();
        assert_eq!(params.unknown_keys(), ["pool_max_conns"]);
    }
}

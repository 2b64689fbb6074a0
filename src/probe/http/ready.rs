//! http://, https:// and wait-http: ready when the URL answers with an accepted status (and,
//! if asked, a body that contains a given text).

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::LocalBoxFuture;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, Method};
use url::Url;

use crate::probe::Probe;
use crate::probe::http;
use crate::probe::query::Query;
use crate::runtime::exit;
use crate::runtime::redact;
use crate::runtime::retry::AttemptError;

/// Enough of a body to find a readiness marker; a huge response is not read to the end.
const BODY_LIMIT: usize = 1 << 20;
const MAX_REDIRECTS: usize = 5;

/// What to send and accept: wait-http's flags, and an http:// URI's parameters.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpOptions {
    /// GET or HEAD.
    #[arg(long, default_value = "GET", value_parser = parse_method)]
    pub method: String,

    /// Accepted status codes: a list of codes and ranges.
    #[arg(long, value_name = "LIST", default_value = "200-399", value_parser = StatusSet::parse)]
    pub status: StatusSet,

    /// Ready only when the body contains this text (in its first MiB).
    #[arg(long, value_name = "TEXT")]
    pub body_contains: Option<String>,

    /// Extra request header, "Name: value" (repeatable). Values are never logged.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// CA certificate (PEM) to verify https servers with, instead of the system bundle.
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,

    /// Accept any server certificate (the connection is still encrypted). Logged as a warning.
    #[arg(long, conflicts_with = "cacert")]
    pub insecure: bool,
}

/// initbox's parameters of an http:// URI; the others stay in the URL sent to the server.
pub const PARAMS: &[&str] = &["method", "status", "body", "header", "cacert", "insecure"];

impl HttpOptions {
    pub fn from_query(query: &mut Query) -> anyhow::Result<HttpOptions> {
        let options = HttpOptions {
            method: query
                .parse(&["method"], parse_method)?
                .unwrap_or_else(|| "GET".into()),
            status: query
                .parse(&["status"], StatusSet::parse)?
                .unwrap_or_else(StatusSet::default_accepted),
            body_contains: query.take(&["body", "body_contains"])?,
            headers: query
                .take_all(&["header"])
                .iter()
                .map(|text| parse_header(text).map_err(exit::usage))
                .collect::<anyhow::Result<_>>()?,
            cacert: query.path(&["cacert"])?,
            insecure: query.flag(&["insecure"])?,
        };
        if options.insecure && options.cacert.is_some() {
            return Err(exit::usage("'insecure' and 'cacert' exclude each other"));
        }
        Ok(options)
    }

    /// The client for these options; each attempt is a fresh connection, as a restarted server
    /// would see from a client.
    pub fn client(&self) -> anyhow::Result<Client> {
        if self.body_contains.is_some() && self.method.eq_ignore_ascii_case("HEAD") {
            return Err(exit::usage(
                "--body-contains needs a body: use it with GET, not HEAD",
            ));
        }
        let trust = http::Trust {
            cacert: self.cacert.as_ref(),
            unverified_by: self.insecure.then_some("--insecure"),
        };
        http::client(
            trust,
            reqwest::redirect::Policy::limited(MAX_REDIRECTS),
            false,
        )
    }
}

/// Status codes and ranges: `200,204,300-399`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

impl StatusSet {
    pub fn parse(text: &str) -> Result<StatusSet, String> {
        let invalid = |why: String| format!("invalid status list '{text}': {why}");
        let code = |part: &str| match part.trim().parse::<u16>() {
            Ok(code @ 100..=599) => Ok(code),
            _ => Err(invalid(format!("'{part}' is not a status code (100-599)"))),
        };
        let ranges = text
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (code(low)?, code(high)?);
                    if low > high {
                        return Err(invalid(format!("range {low}-{high} is empty")));
                    }
                    Ok(low..=high)
                }
                None => code(part).map(|code| code..=code),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StatusSet(ranges))
    }

    /// 200-399, the flag's default.
    fn default_accepted() -> StatusSet {
        StatusSet(vec![200..=399])
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|range| range.contains(&status))
    }
}

pub struct HttpProbe {
    url: Url,
    options: HttpOptions,
    client: Client,
    shown: String,
}

impl HttpProbe {
    /// A probe for `url` with a client from [`HttpOptions::client`] (one can serve many URLs).
    pub fn new(url: Url, options: HttpOptions, client: Client) -> HttpProbe {
        HttpProbe {
            shown: redact::url(&url),
            url,
            options,
            client,
        }
    }
}

impl Probe for HttpProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(check(&self.client, &self.url, &self.options))
    }
}

/// One request; the retry loop bounds it by the attempt timeout.
async fn check(client: &Client, url: &Url, args: &HttpOptions) -> Result<(), AttemptError> {
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .expect("GET or HEAD, checked by the parser");
    // No reqwest timeout: the retry loop bounds the attempt, and one clock gives one reason.
    let mut request = client.request(method, url.clone());
    for (name, value) in &args.headers {
        request = request.header(name, value);
    }
    let mut response = request
        .send()
        .await
        .map_err(|error| AttemptError::transient(anyhow!(http::describe(&error))))?;
    let status = response.status();
    if !args.status.contains(status.as_u16()) {
        return Err(AttemptError::transient(anyhow!("HTTP {status}")));
    }
    let Some(needle) = &args.body_contains else {
        return Ok(());
    };
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match response
            .chunk()
            .await
            .map_err(|error| AttemptError::transient(anyhow!(http::describe(&error))))?
        {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    if String::from_utf8_lossy(&body).contains(needle.as_str()) {
        Ok(())
    } else {
        Err(AttemptError::transient(anyhow!(
            "HTTP {status}, but the body does not contain {needle:?}"
        )))
    }
}

/// An http:// or https:// URL with a host; errors never repeat its credentials.
pub fn parse_url(text: &str) -> Result<Url, String> {
    if redact::has_misplaced_userinfo(text) {
        return Err(redact::misplaced_userinfo_error("URL").to_string());
    }
    let url = Url::parse(text).map_err(|error| format!("invalid URL: {error}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err("invalid URL: no host".into()),
        other => Err(format!(
            "invalid URL: scheme '{other}', expected http or https"
        )),
    }
}

fn parse_method(text: &str) -> Result<String, String> {
    match text.to_ascii_uppercase().as_str() {
        method @ ("GET" | "HEAD") => Ok(method.to_string()),
        _ => Err(format!("method '{text}': expected GET or HEAD")),
    }
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "invalid header: expected \"Name: value\"".to_string())?;
    http::header(name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_take_codes_and_ranges() {
        let set = StatusSet::parse("200,204,300-399").unwrap();
        assert!(set.contains(200) && set.contains(204) && set.contains(302));
        assert!(!set.contains(201) && !set.contains(400));
        for bad in ["", "2xx", "200-", "399-300", "600", "99", "200,,204"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            StatusSet::default_accepted(),
            StatusSet::parse("200-399").unwrap()
        );
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(parse_url("https://example.com/health").is_ok());
        assert!(
            parse_url("ftp://example.com/")
                .unwrap_err()
                .contains("'ftp'")
        );
        assert!(parse_url("example.com/health").is_err());
        assert!(parse_url("http://").is_err());
    }

    #[test]
    fn header_values_are_not_repeated_in_errors() {
        assert!(parse_header("Authorization: Bearer abc").is_ok());
        let error = parse_header("Authorization: Bearer abc\u{7f}secret").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
        assert!(parse_header("no colon").is_err());
        assert_eq!(parse_method("head"), Ok("HEAD".into()));
        assert!(parse_method("POST").is_err());
    }
}

//! One attempt at a download: the request (redirects followed here, so that headers are never
//! sent to another host), the status, and the body streamed into the temporary file and the
//! hash. An attempt after a broken one asks only for the rest (`Range`, with `If-Range` so that
//! a changed file is sent whole), and starts from zero when the server cannot resume.

use std::io::{Seek, Write};
use std::time::Duration;

use anyhow::anyhow;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Response, StatusCode};
use url::Url;

use super::hasher::Hasher;
use super::progress::{Progress, bytes};
use crate::fs::atomic::AtomicFile;
use crate::probe::http;
use crate::runtime::logging::{self, Level};
use crate::runtime::redact;
use crate::runtime::retry::AttemptError;

/// What every download of a run shares.
pub struct Settings {
    pub client: Client,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub max_size: Option<u64>,
    pub max_redirects: usize,
    /// The longest wait for a response, or for the next piece of a body (--attempt-timeout).
    pub stall: Duration,
}

/// What identifies the version of the file being downloaded, to resume only that version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Validator {
    ETag(HeaderValue),
    LastModified(HeaderValue),
}

/// A download in progress: the bytes so far, in the temporary file and in the hash.
pub struct Download {
    pub file: AtomicFile,
    pub target: String,
    pub received: u64,
    pub total: Option<u64>,
    /// Only when a SHA-256 is to be checked: hashing costs about half a second of CPU per GiB.
    hasher: Option<Hasher>,
    validator: Option<Validator>,
    pub progress: Progress,
}

impl Download {
    pub fn new(
        mut file: AtomicFile,
        target: String,
        progress: Progress,
        hash: bool,
    ) -> anyhow::Result<Download> {
        let hasher = if hash {
            let reader = file
                .file()
                .try_clone()
                .map_err(|error| anyhow!("opening the temporary file again: {error}"))?;
            Some(Hasher::start(reader)?)
        } else {
            None
        };
        Ok(Download {
            file,
            target,
            received: 0,
            total: None,
            hasher,
            validator: None,
            progress,
        })
    }

    /// The file, complete, and the SHA-256 of its content if it was hashed.
    pub async fn finish(self) -> anyhow::Result<(AtomicFile, Option<[u8; 32]>)> {
        let digest = match self.hasher {
            Some(hasher) => Some(hasher.finish().await?),
            None => None,
        };
        Ok((self.file, digest))
    }

    /// Drops what was received and starts the file and the hash again.
    fn restart(&mut self, why: &str) -> Result<(), AttemptError> {
        if self.received > 0 {
            logging::emit(
                Level::Warn,
                &format!(
                    "{}: {why}: starting again from 0 ({} discarded)",
                    self.target,
                    bytes(self.received)
                ),
                &[
                    ("event", "restart".into()),
                    ("target", self.target.as_str().into()),
                    ("reason", why.into()),
                    ("discarded_bytes", self.received.into()),
                ],
            );
        }
        // The hash starts again before the file is emptied, so that a read racing with the
        // truncation is known to be stale.
        if let Some(hasher) = &self.hasher {
            hasher.restart();
        }
        let file = self.file.file();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .map_err(|error| {
                AttemptError::permanent(anyhow!("truncating the temporary file: {error}"))
            })?;
        self.received = 0;
        self.total = None;
        self.validator = None;
        self.progress.restart_rate(0);
        Ok(())
    }

    fn append(&mut self, chunk: &[u8]) -> Result<(), AttemptError> {
        self.file.file().write_all(chunk).map_err(|error| {
            AttemptError::permanent(anyhow!(
                "writing {}: {error}",
                self.file.temp_path().display()
            ))
        })?;
        self.received += chunk.len() as u64;
        if let Some(hasher) = &self.hasher {
            hasher.written(self.received);
        }
        self.progress.update(self.received, self.total);
        Ok(())
    }
}

/// One attempt: resumes what earlier attempts received when the server allows it.
pub async fn attempt(
    settings: &Settings,
    url: &Url,
    download: &mut Download,
) -> Result<(), AttemptError> {
    if download.received > 0 && download.validator.is_none() {
        download.restart("the server sent no ETag or Last-Modified to resume with")?;
    }
    let resume_from = download
        .validator
        .clone()
        .filter(|_| download.received > 0)
        .map(|validator| (download.received, validator));
    let response = send(settings, url, resume_from.as_ref()).await?;
    let status = response.status();
    match status {
        StatusCode::OK => {
            if download.received > 0 {
                let why = match (&download.validator, validator(response.headers())) {
                    (Some(before), Some(now)) if *before != now => "the file changed on the server",
                    _ => "the server does not resume (it answered a Range request with 200)",
                };
                download.restart(why)?;
            }
            download.validator = validator(response.headers());
            download.total = response.content_length();
        }
        StatusCode::PARTIAL_CONTENT => {
            let range = content_range(response.headers());
            match range {
                Some((start, total)) if start == download.received => {
                    download.total = total.or(download.total);
                    log_resume(download);
                }
                _ => {
                    download.restart("the server resumed at another offset than asked")?;
                    return Err(AttemptError::transient(anyhow!(
                        "HTTP 206 with an unexpected Content-Range"
                    )));
                }
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Everything had arrived: the connection broke just after the last byte.
            let total = content_range(response.headers()).and_then(|(_, total)| total);
            if download.received > 0 && total == Some(download.received) {
                download.total = total;
                return Ok(());
            }
            download.restart("the server cannot send the rest (416)")?;
            return Err(AttemptError::transient(anyhow!("HTTP {status}")));
        }
        _ => return Err(classify(status, &response)),
    }
    check_size(settings, download.total)?;
    receive(settings, response, download).await
}

/// 408, 429 and 5xx are worth another attempt; other statuses are final.
fn classify(status: StatusCode, response: &Response) -> AttemptError {
    let error = anyhow!("HTTP {status}");
    match status.as_u16() {
        408 | 429 | 500..=599 => {
            AttemptError::transient(error).retry_after(http::retry_after(response))
        }
        _ => AttemptError::permanent(error),
    }
}

fn check_size(settings: &Settings, total: Option<u64>) -> Result<(), AttemptError> {
    match (settings.max_size, total) {
        (Some(max), Some(total)) if total > max => Err(AttemptError::permanent(anyhow!(
            "the file is {} ({total} bytes), more than --max-size {} ({max} bytes)",
            bytes(total),
            bytes(max)
        ))),
        _ => Ok(()),
    }
}

/// Streams the body into the download, piece by piece: memory stays flat whatever the size.
async fn receive(
    settings: &Settings,
    mut response: Response,
    download: &mut Download,
) -> Result<(), AttemptError> {
    loop {
        let chunk = match tokio::time::timeout(settings.stall, response.chunk()).await {
            Err(_) => {
                return Err(AttemptError::transient(anyhow!(
                    "no data for {} after {}",
                    crate::runtime::duration::format(settings.stall),
                    bytes(download.received)
                )));
            }
            Ok(Err(error)) => {
                return Err(AttemptError::transient(anyhow!(
                    "{} after {}",
                    http::describe(&error),
                    received_of(download)
                )));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        if let Some(max) = settings.max_size {
            if download.received + chunk.len() as u64 > max {
                return Err(AttemptError::permanent(anyhow!(
                    "the body is larger than --max-size {} ({max} bytes)",
                    bytes(max)
                )));
            }
        }
        download.append(&chunk)?;
    }
    match download.total {
        Some(total) if download.received < total => Err(AttemptError::transient(anyhow!(
            "the connection closed after {}",
            received_of(download)
        ))),
        _ => Ok(()),
    }
}

/// "1.2 GiB of 4.1 GiB", or the bytes alone when the size is not known.
pub fn received_of(download: &Download) -> String {
    match download.total {
        Some(total) => format!("{} of {}", bytes(download.received), bytes(total)),
        None => bytes(download.received),
    }
}

fn log_resume(download: &Download) {
    logging::emit(
        Level::Info,
        &format!("{}: resuming at {}", download.target, received_of(download)),
        &[
            ("event", "resume".into()),
            ("target", download.target.as_str().into()),
            ("offset", download.received.into()),
        ],
    );
}

/// Sends the request and follows redirects, up to the limit. The user's headers (and the URL's
/// credentials) go only to the URL's own origin: a redirect to another host gets none of them.
async fn send(
    settings: &Settings,
    url: &Url,
    resume: Option<&(u64, Validator)>,
) -> Result<Response, AttemptError> {
    let mut current = url.clone();
    let mut hops = 0;
    loop {
        let mut request = settings.client.get(current.clone());
        if current.origin() == url.origin() {
            for (name, value) in &settings.headers {
                request = request.header(name, value);
            }
        }
        if let Some((from, validator)) = resume {
            let value = match validator {
                Validator::ETag(value) | Validator::LastModified(value) => value.clone(),
            };
            request = request
                .header(header::RANGE, format!("bytes={from}-"))
                .header(header::IF_RANGE, value);
        }
        let response = match tokio::time::timeout(settings.stall, request.send()).await {
            Err(_) => {
                return Err(AttemptError::transient(anyhow!(
                    "no response within {}",
                    crate::runtime::duration::format(settings.stall)
                )));
            }
            Ok(Err(error)) => return Err(AttemptError::transient(anyhow!(http::describe(&error)))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let location = response.headers().get(header::LOCATION).cloned();
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            return Ok(response);
        };
        if hops == settings.max_redirects {
            return Err(AttemptError::permanent(anyhow!(
                "more than {} redirects (--max-redirects)",
                settings.max_redirects
            )));
        }
        let next = location
            .to_str()
            .ok()
            .and_then(|location| current.join(location).ok())
            .ok_or_else(|| {
                AttemptError::permanent(anyhow!("HTTP {status} with an invalid Location"))
            })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(AttemptError::permanent(anyhow!(
                "HTTP {status} to a {} URL",
                next.scheme()
            )));
        }
        if current.scheme() == "https" && next.scheme() == "http" {
            return Err(AttemptError::permanent(anyhow!(
                "HTTP {status} from https to plain http ({}): refused",
                redact::url(&next)
            )));
        }
        logging::emit(
            Level::Debug,
            &format!(
                "{}: HTTP {status} to {}",
                redact::url(&current),
                redact::url(&next)
            ),
            &[("event", "redirect".into())],
        );
        current = next;
        hops += 1;
    }
}

/// A strong ETag, or else Last-Modified: what `If-Range` may carry (a weak ETag may not).
fn validator(headers: &HeaderMap) -> Option<Validator> {
    if let Some(etag) = headers.get(header::ETAG) {
        if !etag.as_bytes().starts_with(b"W/") {
            return Some(Validator::ETag(etag.clone()));
        }
    }
    headers
        .get(header::LAST_MODIFIED)
        .map(|date| Validator::LastModified(date.clone()))
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`), or `bytes */TOTAL` on a 416.
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse::<u64>().ok();
    let start = match range.trim() {
        "*" => 0,
        range => range.split_once('-')?.0.trim().parse().ok()?,
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn content_ranges_are_read_as_servers_write_them() {
        let range = |value| content_range(&headers(&[("content-range", value)]));
        assert_eq!(range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(range("bytes 100-199/*"), Some((100, None)));
        assert_eq!(range("bytes */1000"), Some((0, Some(1000))));
        assert_eq!(range("items 1-2/3"), None);
    }

    #[test]
    fn weak_etags_are_not_validators() {
        let weak = headers(&[
            ("etag", "W/\"x\""),
            ("last-modified", "Sun, 29 Nov 2026 10:00:00 GMT"),
        ]);
        assert!(matches!(validator(&weak), Some(Validator::LastModified(_))));
        let strong = headers(&[("etag", "\"abc\"")]);
        assert!(matches!(validator(&strong), Some(Validator::ETag(_))));
        assert_eq!(validator(&HeaderMap::new()), None);
    }
}

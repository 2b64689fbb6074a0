//! grpc://, grpcs:// and wait-grpc: ready when the standard health service
//! (grpc.health.v1.Health/Check) answers SERVING for the server or for a named service.
//!
//! One unary call over HTTP/2, written here (http2.rs, hpack.rs) rather than taken from the h2
//! crate or tonic: the request is one string field, the answer one enum field, and h2 alone
//! added 196 KiB to the static release binary, against 24 KiB for this client (README,
//! "Building").

mod hpack;
mod http2;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::probe::Probe;
use crate::probe::query::Query;
use crate::probe::target::HostPort;
use crate::probe::tls::{self, Roots, Verify};
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::retry::AttemptError;
use crate::text::error_text;

const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// What to ask and how to connect: wait-grpc's flags, and a grpc:// URI's parameters.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GrpcOptions {
    /// The service to ask about, e.g. orders.v1.Orders; empty asks about the server as a whole.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub service: String,

    /// Connect with TLS (as grpcs:// does).
    #[arg(long)]
    pub tls: bool,

    /// CA certificate (PEM) to verify the server with, instead of the system bundle (implies
    /// --tls).
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,

    /// Accept any server certificate (still encrypted; implies --tls). Logged as a warning.
    #[arg(long, conflicts_with = "cacert")]
    pub insecure: bool,

    /// Exit 1 at once when the server does not know the service (NOT_FOUND), instead of
    /// waiting for it to be registered.
    #[arg(long)]
    pub fail_fast: bool,
}

/// The parameters of a grpc:// URI (TLS is the scheme: grpcs://).
pub const PARAMS: &[&str] = &["service", "cacert", "insecure", "fail_fast"];

pub struct GrpcProbe {
    target: HostPort,
    service: String,
    fail_fast: bool,
    tls: Option<TlsConnector>,
    shown: String,
}

impl GrpcProbe {
    /// `grpc://host:port[/service]` or `grpcs://`; the service may also be `?service=`.
    pub fn from_url(url: &url::Url, query: &mut Query) -> anyhow::Result<GrpcProbe> {
        let shown = url.to_string();
        if !url.username().is_empty() || url.password().is_some() {
            return Err(exit::usage(format!(
                "{}: a grpc:// URI takes no user or password",
                url.scheme()
            )));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
            return Err(exit::usage(format!(
                "{shown}: expected {}://HOST:PORT[/SERVICE] (a port is needed)",
                url.scheme()
            )));
        };
        let target = HostPort::parse(&format!("{host}:{port}")).map_err(exit::usage)?;
        let path_service = percent_encoding::percent_decode_str(url.path().trim_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        let mut options = GrpcOptions {
            service: query.take(&["service"])?.unwrap_or_default(),
            tls: url.scheme() == "grpcs",
            cacert: query.path(&["cacert"])?,
            insecure: query.flag(&["insecure"])?,
            fail_fast: query.flag(&["fail_fast"])?,
        };
        match (path_service.is_empty(), options.service.is_empty()) {
            (false, false) => {
                return Err(exit::usage(format!(
                    "{shown}: the service is named twice (path and ?service=)"
                )));
            }
            (false, true) => options.service = path_service,
            _ => {}
        }
        if !options.tls && (options.cacert.is_some() || options.insecure) {
            return Err(exit::usage(format!(
                "{shown}: 'cacert' and 'insecure' need grpcs://"
            )));
        }
        GrpcProbe::new(target, options)
    }

    /// A probe shown as `grpc://host:port/service` (`grpcs://` with TLS) in logs.
    pub fn new(target: HostPort, options: GrpcOptions) -> anyhow::Result<GrpcProbe> {
        if options.insecure && options.cacert.is_some() {
            return Err(exit::usage("'insecure' and 'cacert' exclude each other"));
        }
        let secure = options.tls || options.cacert.is_some() || options.insecure;
        let mut shown = format!("{}://{target}", if secure { "grpcs" } else { "grpc" });
        if !options.service.is_empty() {
            shown.push('/');
            shown.push_str(&options.service);
        }
        let tls = if secure {
            let verify = if options.insecure {
                logging::emit(
                    Level::Warn,
                    &format!("{shown}: insecure: the server certificate is not verified"),
                    &[("event", "insecure".into())],
                );
                Verify::Nothing
            } else {
                Verify::Full
            };
            let roots = options.cacert.clone().map_or(Roots::System, Roots::File);
            let mut config = Arc::unwrap_or_clone(tls::client_config(&roots, verify)?);
            // gRPC servers only speak HTTP/2, and TLS ones insist on hearing it in ALPN.
            config.alpn_protocols = vec![b"h2".to_vec()];
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(GrpcProbe {
            target,
            service: options.service,
            fail_fast: options.fail_fast,
            tls,
            shown,
        })
    }

    async fn ask(&self) -> Result<(), AttemptError> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|error| AttemptError::transient(anyhow!(error_text::io(&error))))?;
        let _ = tcp.set_nodelay(true);
        let answer = match &self.tls {
            None => health_check(tcp, "http", self).await,
            Some(connector) => {
                let name = ServerName::try_from(self.target.host.clone()).map_err(|error| {
                    AttemptError::permanent(anyhow!("invalid TLS server name: {error}"))
                })?;
                let stream = connector.connect(name, tcp).await.map_err(|error| {
                    AttemptError::transient(anyhow!("TLS: {}", error_text::io(&error)))
                })?;
                health_check(stream, "https", self).await
            }
        }?;
        self.judge(answer)
    }

    /// What the answer means for readiness.
    fn judge(&self, answer: Answer) -> Result<(), AttemptError> {
        match answer {
            Answer::Status(1) => Ok(()),
            Answer::Status(status) => Err(AttemptError::transient(anyhow!(
                "health status {}",
                serving_status_name(status)
            ))),
            Answer::Failed { code: 5, message } => {
                let error = anyhow!(
                    "gRPC NOT_FOUND: unknown service '{}'{}",
                    self.service,
                    detail(&message)
                );
                if self.fail_fast {
                    Err(AttemptError::permanent(error))
                } else {
                    Err(AttemptError::transient(error))
                }
            }
            // No health service at all: it will not appear by waiting on the same server.
            Answer::Failed { code: 12, message } => Err(AttemptError::permanent(anyhow!(
                "gRPC UNIMPLEMENTED: the server has no grpc.health.v1.Health service{}",
                detail(&message)
            ))),
            Answer::Failed { code, message } => Err(AttemptError::transient(anyhow!(
                "gRPC {}{}",
                status_code_name(code),
                detail(&message)
            ))),
        }
    }
}

impl Probe for GrpcProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(self.ask())
    }
}

/// A health call's outcome: the serving status, or the call's gRPC error.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Status(u64),
    Failed { code: u32, message: String },
}

/// One HTTP/2 connection, one call; the connection is closed with the attempt.
async fn health_check<S>(mut io: S, scheme: &str, probe: &GrpcProbe) -> Result<Answer, AttemptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = probe.target.to_string();
    let headers = [
        (":method", "POST"),
        (":scheme", scheme),
        (":path", CHECK_PATH),
        (":authority", authority.as_str()),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", concat!("initbox/", env!("CARGO_PKG_VERSION"))),
    ];
    let response = http2::request(&mut io, &headers, &encode_request(&probe.service))
        .await
        .map_err(|failure| AttemptError::transient(anyhow!(describe(failure))))?;
    let transient = |error: String| AttemptError::transient(anyhow!(error));
    match response.field(":status") {
        Some("200") => {}
        status => {
            return Err(transient(format!(
                "HTTP {} instead of a gRPC answer (is this a gRPC port?)",
                status.unwrap_or("without a status")
            )));
        }
    }
    // A call that fails at once answers with its status in the headers ("trailers-only").
    if let Some(failed) = grpc_failure(&response) {
        return Ok(failed);
    }
    decode_answer(&response.body)
        .map(Answer::Status)
        .map_err(|why| transient(format!("unreadable health answer: {why}")))
}

/// The call's error from `grpc-status` and `grpc-message`, if it failed.
fn grpc_failure(response: &http2::Response) -> Option<Answer> {
    let code: u32 = response.field("grpc-status")?.parse().ok()?;
    if code == 0 {
        return None;
    }
    let message = response
        .field("grpc-message")
        .map(|value| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Some(Answer::Failed { code, message })
}

/// A HealthCheckRequest (`string service = 1`) in a gRPC frame: no compression, a 4-byte length.
fn encode_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        push_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

/// The `status` field (1) of the HealthCheckResponse in a gRPC frame; absent means 0, UNKNOWN.
fn decode_answer(frame: &[u8]) -> Result<u64, String> {
    let (&compressed, rest) = frame.split_first().ok_or("no message")?;
    if compressed != 0 {
        return Err("compressed, though no compression was offered".into());
    }
    let length = rest
        .get(..4)
        .map(|bytes| u32::from_be_bytes(bytes.try_into().expect("4 bytes")) as usize)
        .ok_or("truncated frame")?;
    let mut message = rest.get(4..4 + length).ok_or("truncated message")?;
    let mut status = 0;
    while !message.is_empty() {
        let key = read_varint(&mut message)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = read_varint(&mut message)?,
            (_, 0) => {
                read_varint(&mut message)?;
            }
            (_, 2) => {
                let skip = read_varint(&mut message)? as usize;
                message = message.get(skip..).ok_or("truncated field")?;
            }
            (_, 1) => message = message.get(8..).ok_or("truncated field")?,
            (_, 5) => message = message.get(4..).ok_or("truncated field")?,
            (_, wire) => return Err(format!("unknown wire type {wire}")),
        }
    }
    Ok(status)
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => format!("{other}"),
    }
}

fn status_code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("status {code}"), |name| (*name).to_string())
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// An HTTP/2 failure in a few words; a port that does not answer in HTTP/2 is named as such.
fn describe(failure: http2::Failure) -> String {
    match failure {
        http2::Failure::Io(error) => error_text::io(&error),
        http2::Failure::NotHttp2(why) => format!("{why} (is this a gRPC port?)"),
        http2::Failure::Ended(why) => why,
        http2::Failure::Protocol(why) => format!("HTTP/2: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_the_wire_format() {
        assert_eq!(encode_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(
            encode_request("a.B"),
            [0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']
        );
        let long = "s".repeat(200);
        assert_eq!(&encode_request(&long)[5..8], &[0x0a, 0xc8, 0x01]);
        assert_eq!(decode_answer(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_answer(&[0, 0, 0, 0, 0]), Ok(0));
        // An unknown field before the status is skipped.
        assert_eq!(
            decode_answer(&[0, 0, 0, 0, 6, 0x12, 2, b'x', b'y', 0x08, 2]),
            Ok(2)
        );
        assert!(decode_answer(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_answer(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(decode_answer(&[]).is_err());
    }

    #[test]
    fn failures_are_read_from_grpc_headers() {
        let mut response = http2::Response::default();
        response.trailers.push(("grpc-status".into(), "0".into()));
        assert_eq!(grpc_failure(&response), None);
        response.headers.push(("grpc-status".into(), "5".into()));
        response
            .headers
            .push(("grpc-message".into(), "unknown%20service".into()));
        assert_eq!(
            grpc_failure(&response),
            Some(Answer::Failed {
                code: 5,
                message: "unknown service".into()
            })
        );
        assert_eq!(status_code_name(14), "UNAVAILABLE");
        assert_eq!(status_code_name(99), "status 99");
    }
}

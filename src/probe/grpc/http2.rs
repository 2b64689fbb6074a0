//! HTTP/2 (RFC 9113) for exactly one request on a fresh connection: the preface, SETTINGS, one
//! stream with HEADERS and DATA, then the answer's headers, body and trailers. Settings and
//! pings from the server are acknowledged; flow control never comes into play, since a health
//! request and its answer are far below the initial 64 KiB windows.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::probe::grpc::hpack;
use crate::text::error_text;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest frame a peer may send before we say otherwise (SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16_384;
/// A health answer is a few bytes; anything much larger is not one.
const MAX_BODY: usize = 64 * 1024;
const STREAM: u32 = 1;

// Frame types.
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;

// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// SETTINGS_ENABLE_PUSH = 0: no pushed streams (and their header blocks) to keep track of.
const CLIENT_SETTINGS: [u8; 6] = [0, 2, 0, 0, 0, 0];

/// The answer to the one request.
#[derive(Debug, Default)]
pub struct Response {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The value of a header or, if absent there, of a trailer.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .chain(&self.trailers)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why the exchange failed, in words for the log.
#[derive(Debug)]
pub enum Failure {
    Io(io::Error),
    /// The other end does not speak HTTP/2 (an HTTP/1 server, another protocol).
    NotHttp2(String),
    /// The server ended the stream or the connection (RST_STREAM, GOAWAY).
    Ended(String),
    Protocol(String),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Io(error)
    }
}

/// Sends one request (`headers` in order, pseudo-headers first; `body` as one DATA frame that
/// ends the stream) and reads its answer to the end of the stream.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, Failure> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &CLIENT_SETTINGS);
    frame(
        &mut out,
        HEADERS,
        END_HEADERS,
        STREAM,
        &hpack::encode(headers),
    );
    frame(&mut out, DATA, END_STREAM, STREAM, body);
    stream.write_all(&out).await?;
    stream.flush().await?;

    let mut decoder = hpack::Decoder::new();
    let mut response = Response::default();
    let mut blocks = 0;
    let mut first = true;
    loop {
        let (kind, flags, id, payload) = match read_frame(stream).await {
            Err(Failure::Io(error)) if first => {
                return Err(Failure::NotHttp2(format!(
                    "{} before an HTTP/2 answer",
                    error_text::io(&error)
                )));
            }
            other => other?,
        };
        // A server's first frame is its SETTINGS; anything else is not HTTP/2.
        if first && (kind != SETTINGS || id != 0) {
            return Err(Failure::NotHttp2("the answer is not HTTP/2".into()));
        }
        first = false;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                stream.write_all(&ack).await?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                stream.write_all(&pong).await?;
            }
            GOAWAY => {
                let code = payload.get(4..8).map_or(0, be_u32);
                return Err(Failure::Ended(format!(
                    "the server closed the connection (GOAWAY, {})",
                    error_code_name(code)
                )));
            }
            PUSH_PROMISE => return Err(Failure::Protocol("a push, though pushes are off".into())),
            RST_STREAM if id == STREAM => {
                let code = payload.get(..4).map_or(0, be_u32);
                return Err(Failure::Ended(format!(
                    "the server reset the call (RST_STREAM, {})",
                    error_code_name(code)
                )));
            }
            HEADERS if id == STREAM => {
                let mut block = unpad(&payload, flags)?.to_vec();
                let mut block_flags = flags;
                while block_flags & END_HEADERS == 0 {
                    let (kind, flags, id, more) = read_frame(stream).await?;
                    if kind != CONTINUATION || id != STREAM {
                        return Err(Failure::Protocol("a header block cut short".into()));
                    }
                    block.extend_from_slice(&more);
                    if block.len() > MAX_BODY {
                        return Err(Failure::Protocol("header block too large".into()));
                    }
                    block_flags = flags;
                }
                let fields = decoder.decode(&block).map_err(Failure::Protocol)?;
                blocks += 1;
                if blocks == 1 {
                    response.headers = fields;
                } else {
                    response.trailers = fields;
                }
                if flags & END_STREAM != 0 {
                    return Ok(response);
                }
            }
            DATA if id == STREAM => {
                response.body.extend_from_slice(unpad(&payload, flags)?);
                if response.body.len() > MAX_BODY {
                    return Err(Failure::Protocol("the answer is too large".into()));
                }
                if flags & END_STREAM != 0 {
                    return Ok(response);
                }
            }
            // WINDOW_UPDATE, PRIORITY, acknowledgements, unknown types: nothing to do.
            _ => {}
        }
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let length = (payload.len() as u32).to_be_bytes();
    out.extend_from_slice(&length[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(u8, u8, u32, Vec<u8>), Failure> {
    let mut header = [0u8; 9];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|error| Failure::Io(error_text::closed_early(error)))?;
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let (kind, flags) = (header[3], header[4]);
    let id = be_u32(&header[5..9]) & 0x7fff_ffff;
    if length > MAX_FRAME {
        return Err(if kind == SETTINGS || header.starts_with(b"HTTP") {
            Failure::NotHttp2("the answer is not HTTP/2".into())
        } else {
            Failure::Protocol(format!("a frame of {length} bytes"))
        });
    }
    let mut payload = vec![0; length];
    stream.read_exact(&mut payload).await?;
    Ok((kind, flags, id, payload))
}

/// A HEADERS or DATA payload without its padding (and a HEADERS' priority fields).
fn unpad(payload: &[u8], flags: u8) -> Result<&[u8], Failure> {
    let short = || Failure::Protocol("a frame shorter than its padding".into());
    let mut body = payload;
    let mut padding = 0;
    if flags & PADDED != 0 {
        let (&length, rest) = body.split_first().ok_or_else(short)?;
        padding = usize::from(length);
        body = rest;
    }
    if flags & PRIORITY != 0 {
        body = body.get(5..).ok_or_else(short)?;
    }
    body.get(..body.len().checked_sub(padding).ok_or_else(short)?)
        .ok_or_else(short)
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn error_code_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("error {code}"), |name| (*name).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bytes` as a server would send them, then the end of its side, read by `request` over
    /// an in-memory pipe (the server's half stays open to take the request).
    async fn answer_bytes(bytes: &[u8]) -> Result<Response, Failure> {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        server.write_all(bytes).await.unwrap();
        server.shutdown().await.unwrap();
        request(&mut client, &[(":method", "POST")], b"x").await
    }

    async fn answer(frames: &[(u8, u8, u32, Vec<u8>)]) -> Result<Response, Failure> {
        let mut bytes = Vec::new();
        for (kind, flags, stream, payload) in frames {
            frame(&mut bytes, *kind, *flags, *stream, payload);
        }
        answer_bytes(&bytes).await
    }

    #[tokio::test]
    async fn reads_headers_padded_data_and_trailers() {
        let headers = hpack::encode(&[(":status", "200")]);
        let trailers = hpack::encode(&[("grpc-status", "0")]);
        let mut padded = vec![2];
        padded.extend_from_slice(b"body");
        padded.extend_from_slice(&[0, 0]);
        let response = answer(&[
            (SETTINGS, 0, 0, vec![]),
            (PING, 0, 0, vec![0; 8]),
            (HEADERS, END_HEADERS, STREAM, headers),
            (DATA, PADDED, STREAM, padded),
            (HEADERS, END_HEADERS | END_STREAM, STREAM, trailers),
        ])
        .await
        .unwrap();
        assert_eq!(response.field(":status"), Some("200"));
        assert_eq!(response.body, b"body");
        assert_eq!(response.field("grpc-status"), Some("0"));
    }

    #[tokio::test]
    async fn header_blocks_may_continue() {
        let block = hpack::encode(&[(":status", "200"), ("grpc-status", "5")]);
        let (start, rest) = block.split_at(4);
        let response = answer(&[
            (SETTINGS, 0, 0, vec![]),
            (HEADERS, END_STREAM, STREAM, start.to_vec()),
            (CONTINUATION, END_HEADERS, STREAM, rest.to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(response.field("grpc-status"), Some("5"));
    }

    #[tokio::test]
    async fn other_protocols_resets_and_cut_answers_are_named() {
        let http1 = answer_bytes(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        assert!(matches!(http1, Err(Failure::NotHttp2(_))), "{http1:?}");
        let reset = answer(&[
            (SETTINGS, 0, 0, vec![]),
            (RST_STREAM, 0, STREAM, vec![0, 0, 0, 7]),
        ])
        .await;
        assert!(
            matches!(&reset, Err(Failure::Ended(text)) if text.contains("REFUSED_STREAM")),
            "{reset:?}"
        );
        let cut = answer(&[(SETTINGS, 0, 0, vec![])]).await;
        assert!(matches!(cut, Err(Failure::Io(_))), "{cut:?}");
        let nothing = answer(&[]).await;
        assert!(matches!(nothing, Err(Failure::NotHttp2(_))), "{nothing:?}");
    }
}

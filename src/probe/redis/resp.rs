//! A minimal Redis (RESP2) client: enough to authenticate, select a database and ask PING and
//! INFO, with the server's own error lines (LOADING, NOAUTH, WRONGPASS) kept intact.
//!
//! Written here rather than taken from the redis crate: readiness needs four commands and the
//! exact error text, and this is a few dozen lines against a large dependency.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Replies larger than this are refused: INFO is a few KiB, and a wrong port must not make
/// initbox allocate whatever length the other end claims.
const MAX_BULK: usize = 4 << 20;
const MAX_ARRAY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// `-LOADING Redis is loading the dataset in memory`, without the `-`.
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for INFO and simple replies.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(text) => Some(text.clone()),
            Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

pub struct Connection<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream: BufReader::new(stream),
        }
    }

    /// Sends one command and reads its reply.
    pub async fn command(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&request).await?;
        self.stream.get_mut().flush().await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> io::Result<Reply> {
        // Arrays nest; an explicit stack keeps the reader iterative.
        let mut stack: Vec<(Vec<Reply>, usize)> = Vec::new();
        loop {
            let mut reply = self.read_scalar_or_array_header().await?;
            if let Reply::Array(Some(items)) = &reply
                && items.capacity() > 0
                && items.is_empty()
            {
                let expected = items.capacity();
                stack.push((Vec::with_capacity(expected), expected));
                continue;
            }
            loop {
                match stack.last_mut() {
                    None => return Ok(reply),
                    Some((items, expected)) => {
                        items.push(reply);
                        if items.len() < *expected {
                            break;
                        }
                        let (items, _) = stack.pop().expect("checked above");
                        reply = Reply::Array(Some(items));
                    }
                }
            }
        }
    }

    /// A scalar reply, or an array header given as an empty Vec whose capacity is its length.
    async fn read_scalar_or_array_header(&mut self) -> io::Result<Reply> {
        let line = self.read_line().await?;
        // The type marker is one ASCII byte; anything else is not Redis (and not a char
        // boundary to split at).
        if !line.as_bytes()[0].is_ascii() {
            return Err(protocol(
                "not a Redis reply (is this the right port?)".into(),
            ));
        }
        let (kind, rest) = line.split_at(1);
        Ok(match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(parse_number(rest)?),
            "$" => match parse_number(rest)? {
                -1 => Reply::Bulk(None),
                length if (0..=MAX_BULK as i64).contains(&length) => {
                    let mut bytes = vec![0; length as usize + 2];
                    self.stream.read_exact(&mut bytes).await?;
                    bytes.truncate(length as usize);
                    Reply::Bulk(Some(bytes))
                }
                length => return Err(protocol(format!("bulk reply of {length} bytes"))),
            },
            "*" => match parse_number(rest)? {
                -1 => Reply::Array(None),
                0 => Reply::Array(Some(Vec::new())),
                length if (1..=MAX_ARRAY as i64).contains(&length) => {
                    Reply::Array(Some(Vec::with_capacity(length as usize)))
                }
                length => return Err(protocol(format!("array reply of {length} items"))),
            },
            _ => {
                return Err(protocol(
                    "not a Redis reply (is this the right port?)".into(),
                ));
            }
        })
    }

    async fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.stream)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .await?;
        if line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        if !line.ends_with(b"\r\n") || line.len() < 3 {
            return Err(protocol(
                "not a Redis reply (is this the right port?)".into(),
            ));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| protocol("reply line is not UTF-8".into()))
    }
}

fn parse_number(text: &str) -> io::Result<i64> {
    text.parse()
        .map_err(|_| protocol(format!("bad length or number '{text}'")))
}

fn protocol(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The value of `key` in an INFO reply (`loading:0`, `role:master`).
pub fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> io::Result<Reply> {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(bytes).await.unwrap();
        // Closing our end makes a truncated reply an EOF instead of a wait.
        drop(client);
        Connection::new(server).read_reply().await
    }

    #[tokio::test]
    async fn reads_every_reply_kind() {
        assert_eq!(
            parse(b"+PONG\r\n").await.unwrap(),
            Reply::Simple("PONG".into())
        );
        assert_eq!(
            parse(b"-LOADING Redis is loading the dataset in memory\r\n")
                .await
                .unwrap(),
            Reply::Error("LOADING Redis is loading the dataset in memory".into())
        );
        assert_eq!(parse(b":42\r\n").await.unwrap(), Reply::Integer(42));
        assert_eq!(
            parse(b"$5\r\nab\r\nc\r\n").await.unwrap(),
            Reply::Bulk(Some(b"ab\r\nc".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n*1\r\n:1\r\n$1\r\nx\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![Reply::Integer(1)])),
                Reply::Bulk(Some(b"x".to_vec()))
            ]))
        );
        assert_eq!(parse(b"*0\r\n").await.unwrap(), Reply::Array(Some(vec![])));
    }

    #[tokio::test]
    async fn refuses_what_is_not_redis() {
        for bad in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"$99999999999\r\n",
            b"+PONG\n",
            b"",
        ] {
            assert!(
                parse(bad).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn finds_info_fields() {
        let info = "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\n";
        assert_eq!(info_field(info, "loading"), Some("0"));
        assert_eq!(info_field(info, "role"), None);
    }
}

//! The MySQL client/server protocol, as far as a readiness check needs it: packets, the server's
//! greeting, TLS upgrade, login with mysql_native_password or caching_sha2_password (and
//! mysql_clear_password over TLS), one text query and its first value, and ERR packets.
//!
//! Written here rather than taken from mysql_async: with its smallest features that crate added
//! 1.52 MiB to the static release binary (past the image's 6 MiB budget), this client 28 KiB
//! (README, "Building"), and a readiness check needs neither prepared statements, pools nor
//! binary rows. The hash functions come from ring, already linked for TLS.

use std::fmt;
use std::io;

use ring::digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::text::error_text;

/// Packets larger than this are refused: a greeting or one small row is a few hundred bytes, and
/// a wrong port must not make initbox allocate whatever length the other end claims.
const MAX_PACKET: usize = 1 << 20;

// Capability flags (the protocol's names).
const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;
const CLIENT_DEPRECATE_EOF: u32 = 0x100_0000;

/// utf8mb4_general_ci: every server since 5.5 has it.
const CHARSET: u8 = 45;
const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;

/// An ERR packet: the server's own code, SQLSTATE and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: Option<String>,
    pub message: String,
}

impl fmt::Display for ServerError {
    /// As the mysql client prints it: `ERROR 1045 (28000): Access denied for user ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(state) => write!(f, "ERROR {} ({state}): {}", self.code, self.message),
            None => write!(f, "ERROR {}: {}", self.code, self.message),
        }
    }
}

/// Why a conversation failed.
#[derive(Debug)]
pub enum Failure {
    /// The server said no, in its own words.
    Server(ServerError),
    /// The connection broke or timed out.
    Io(io::Error),
    /// The other end does not speak the protocol (or not a part initbox speaks).
    Protocol(String),
    /// Logging in needs something initbox does not do (an unknown plugin, RSA without TLS).
    Unsupported(String),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Io(error)
    }
}

fn protocol(why: impl Into<String>) -> Failure {
    Failure::Protocol(why.into())
}

/// What the server's greeting says.
#[derive(Debug)]
pub struct Greeting {
    pub version: String,
    pub capabilities: u32,
    /// The 20 bytes the password is scrambled with.
    pub scramble: Vec<u8>,
    pub plugin: String,
}

/// Packets over one stream, with the sequence number the protocol requires.
pub struct Packets<S> {
    stream: S,
    sequence: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Packets<S> {
    pub fn new(stream: S) -> Packets<S> {
        Packets {
            stream,
            sequence: 0,
        }
    }

    /// The stream, to wrap in TLS; the sequence carries on over it.
    pub fn into_parts(self) -> (S, u8) {
        (self.stream, self.sequence)
    }

    pub fn resume(stream: S, sequence: u8) -> Packets<S> {
        Packets { stream, sequence }
    }

    pub async fn read(&mut self) -> Result<Vec<u8>, Failure> {
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .await
            .map_err(|error| Failure::Io(error_text::closed_early(error)))?;
        let length = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        if length > MAX_PACKET {
            return Err(protocol("not a MySQL packet (is this the right port?)"));
        }
        self.sequence = header[3].wrapping_add(1);
        let mut payload = vec![0; length];
        self.stream.read_exact(&mut payload).await?;
        Ok(payload)
    }

    pub async fn write(&mut self, payload: &[u8]) -> Result<(), Failure> {
        let length = (payload.len() as u32).to_le_bytes();
        let mut packet = Vec::with_capacity(payload.len() + 4);
        packet.extend_from_slice(&[length[0], length[1], length[2], self.sequence]);
        packet.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.stream.write_all(&packet).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Starts a new command: sequence numbers begin again at 0.
    pub async fn command(&mut self, command: u8, argument: &[u8]) -> Result<(), Failure> {
        self.sequence = 0;
        let mut payload = vec![command];
        payload.extend_from_slice(argument);
        self.write(&payload).await
    }

    /// Says goodbye, best effort: the server logs an aborted connection otherwise.
    pub async fn quit(&mut self) {
        let _ = self.command(COM_QUIT, &[]).await;
        let _ = self.stream.shutdown().await;
    }
}

/// Reads the greeting (HandshakeV10), or the ERR a server sends instead (too many connections,
/// a blocked host).
pub async fn read_greeting<S: AsyncRead + AsyncWrite + Unpin>(
    packets: &mut Packets<S>,
) -> Result<Greeting, Failure> {
    let packet = packets.read().await?;
    let mut reader = Reader(&packet);
    match reader.u8()? {
        0x0a => {}
        0xff => return Err(Failure::Server(server_error(&packet))),
        other => {
            return Err(protocol(format!(
                "protocol version {other}, not 10 (is this a MySQL port?)"
            )));
        }
    }
    let version = reader.nul_string()?;
    reader.skip(4)?; // connection id
    let mut scramble = reader.take(8)?.to_vec();
    reader.skip(1)?;
    let mut capabilities = u32::from(reader.u16()?);
    let mut plugin = "mysql_native_password".to_string();
    if !reader.0.is_empty() {
        reader.skip(1 + 2)?; // charset, status
        capabilities |= u32::from(reader.u16()?) << 16;
        let data_length = reader.u8()? as usize;
        reader.skip(10)?;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let rest = data_length.saturating_sub(8).max(13);
            let part = reader.take(rest.min(reader.0.len()))?;
            // The second part ends with a NUL that is not part of the scramble.
            scramble.extend_from_slice(part.strip_suffix(&[0]).unwrap_or(part));
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 && !reader.0.is_empty() {
            plugin = reader.nul_string_or_rest();
        }
    }
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return Err(Failure::Unsupported(format!(
            "server {version} predates MySQL 4.1's protocol"
        )));
    }
    Ok(Greeting {
        version,
        capabilities,
        scramble,
        plugin,
    })
}

/// The capabilities initbox asks for, within what the server offers.
pub fn client_capabilities(greeting: &Greeting, database: bool, tls: bool) -> u32 {
    let mut wanted = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_DEPRECATE_EOF;
    if database {
        wanted |= CLIENT_CONNECT_WITH_DB;
    }
    if tls {
        wanted |= CLIENT_SSL;
    }
    wanted & greeting.capabilities
}

pub fn server_offers_tls(greeting: &Greeting) -> bool {
    greeting.capabilities & CLIENT_SSL != 0
}

/// The SSLRequest packet: the start of the login, after which both sides switch to TLS.
pub fn ssl_request(capabilities: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(32);
    payload.extend_from_slice(&capabilities.to_le_bytes());
    payload.extend_from_slice(&(MAX_PACKET as u32).to_le_bytes());
    payload.push(CHARSET);
    payload.extend_from_slice(&[0; 23]);
    payload
}

/// The login packet (HandshakeResponse41).
pub fn login(
    capabilities: u32,
    user: &str,
    auth_response: &[u8],
    database: Option<&str>,
    plugin: &str,
) -> Vec<u8> {
    let mut payload = ssl_request(capabilities);
    payload.extend_from_slice(user.as_bytes());
    payload.push(0);
    if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        push_lenenc(&mut payload, auth_response.len() as u64);
    } else {
        payload.push(auth_response.len() as u8);
    }
    payload.extend_from_slice(auth_response);
    if let Some(database) = database.filter(|_| capabilities & CLIENT_CONNECT_WITH_DB != 0) {
        payload.extend_from_slice(database.as_bytes());
        payload.push(0);
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        payload.extend_from_slice(plugin.as_bytes());
        payload.push(0);
    }
    payload
}

/// The first answer a plugin sends: a scramble of the password, never the password itself
/// (except mysql_clear_password, which the caller allows over TLS only).
pub fn scramble_password(
    plugin: &str,
    password: &str,
    scramble: &[u8],
) -> Result<Vec<u8>, Failure> {
    if password.is_empty() && plugin != "mysql_clear_password" {
        return Ok(Vec::new());
    }
    match plugin {
        // SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))
        "mysql_native_password" => {
            let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
            let once = digest::digest(sha1, password.as_bytes());
            let twice = digest::digest(sha1, once.as_ref());
            let mut context = digest::Context::new(sha1);
            context.update(&scramble[..scramble.len().min(20)]);
            context.update(twice.as_ref());
            Ok(xor(once.as_ref(), context.finish().as_ref()))
        }
        // SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)
        "caching_sha2_password" => {
            let once = digest::digest(&digest::SHA256, password.as_bytes());
            let twice = digest::digest(&digest::SHA256, once.as_ref());
            let mut context = digest::Context::new(&digest::SHA256);
            context.update(twice.as_ref());
            context.update(&scramble[..scramble.len().min(20)]);
            Ok(xor(once.as_ref(), context.finish().as_ref()))
        }
        "mysql_clear_password" => {
            let mut clear = password.as_bytes().to_vec();
            clear.push(0);
            Ok(clear)
        }
        other => Err(Failure::Unsupported(format!(
            "the server asks for the authentication plugin '{other}', which initbox does not \
             speak (it speaks mysql_native_password and caching_sha2_password)"
        ))),
    }
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// What the server says after the login packet (or after an answer to its request).
#[derive(Debug)]
pub enum AuthStep {
    /// Logged in.
    Done,
    /// Start again with another plugin and a fresh scramble (AuthSwitchRequest).
    Switch { plugin: String, scramble: Vec<u8> },
    /// The plugin's own exchange (AuthMoreData): caching_sha2_password's fast/full path.
    More(Vec<u8>),
}

pub fn auth_step(packet: &[u8]) -> Result<AuthStep, Failure> {
    match packet.first() {
        Some(0x00) => Ok(AuthStep::Done),
        Some(0xff) => Err(Failure::Server(server_error(packet))),
        Some(0xfe) => {
            let mut reader = Reader(&packet[1..]);
            let plugin = reader.nul_string_or_rest();
            let data = reader.0;
            Ok(AuthStep::Switch {
                plugin,
                scramble: data.strip_suffix(&[0]).unwrap_or(data).to_vec(),
            })
        }
        Some(0x01) => Ok(AuthStep::More(packet[1..].to_vec())),
        _ => Err(protocol("unexpected answer to the login")),
    }
}

/// Runs a text query and returns the first column of its first row (`None` for NULL or no row).
pub async fn query_first_value<S: AsyncRead + AsyncWrite + Unpin>(
    packets: &mut Packets<S>,
    capabilities: u32,
    sql: &str,
) -> Result<Option<String>, Failure> {
    packets.command(COM_QUERY, sql.as_bytes()).await?;
    let first = packets.read().await?;
    let columns = match first.first() {
        Some(0xff) => return Err(Failure::Server(server_error(&first))),
        Some(0x00) => return Ok(None), // a statement without a result set
        _ => Reader(&first).lenenc()?,
    };
    for _ in 0..columns {
        packets.read().await?;
    }
    if capabilities & CLIENT_DEPRECATE_EOF == 0 {
        packets.read().await?; // EOF after the column definitions
    }
    let mut value = None;
    let mut first_row = true;
    loop {
        let row = packets.read().await?;
        match row.first() {
            Some(0xff) => return Err(Failure::Server(server_error(&row))),
            // EOF, or OK standing in for it: a 0xfe header in a short packet.
            Some(0xfe) if row.len() < 0xff_ffff => return Ok(value),
            _ if first_row => {
                first_row = false;
                let mut reader = Reader(&row);
                value = match reader.0.first() {
                    Some(0xfb) => None,
                    _ => {
                        let length = reader.lenenc()? as usize;
                        Some(String::from_utf8_lossy(reader.take(length)?).into_owned())
                    }
                };
            }
            _ => {}
        }
    }
}

/// An ERR packet's code, SQLSTATE (4.1 and later) and message.
pub fn server_error(packet: &[u8]) -> ServerError {
    let code = packet
        .get(1..3)
        .map_or(0, |bytes| u16::from_le_bytes([bytes[0], bytes[1]]));
    let rest = packet.get(3..).unwrap_or_default();
    let (state, message) = match rest.strip_prefix(b"#") {
        Some(marked) if marked.len() >= 5 => (
            Some(String::from_utf8_lossy(&marked[..5]).into_owned()),
            &marked[5..],
        ),
        _ => (None, rest),
    };
    ServerError {
        code,
        state,
        message: String::from_utf8_lossy(message).trim().to_string(),
    }
}

fn push_lenenc(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=250 => out.push(value as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(value as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Reads fields off the front of a payload; running short is a protocol error, never a panic.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], Failure> {
        if self.0.len() < count {
            return Err(protocol("packet too short"));
        }
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(taken)
    }

    fn skip(&mut self, count: usize) -> Result<(), Failure> {
        self.take(count).map(drop)
    }

    fn u8(&mut self) -> Result<u8, Failure> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Failure> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn lenenc(&mut self) -> Result<u64, Failure> {
        let width = match self.u8()? {
            small @ 0..=250 => return Ok(u64::from(small)),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            _ => return Err(protocol("bad length-encoded integer")),
        };
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(self.take(width)?);
        Ok(u64::from_le_bytes(bytes))
    }

    fn nul_string(&mut self) -> Result<String, Failure> {
        let end = self
            .0
            .iter()
            .position(|&byte| byte == 0)
            .ok_or_else(|| protocol("unterminated string"))?;
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(text)
    }

    /// A NUL-terminated string, or the rest (some servers leave off the final NUL).
    fn nul_string_or_rest(&mut self) -> String {
        self.nul_string().unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(self.0).into_owned();
            self.0 = &[];
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrambles_match_the_servers_formulas() {
        // Computed independently (Python hashlib) for password "secret" and scramble 0..20.
        let scramble: Vec<u8> = (0..20).collect();
        let native = scramble_password("mysql_native_password", "secret", &scramble).unwrap();
        assert_eq!(hex(&native), "21b3ff405f32cbe4aafff291396046ea29fa3a4d");
        let sha2 = scramble_password("caching_sha2_password", "secret", &scramble).unwrap();
        assert_eq!(
            hex(&sha2),
            "6c84c617ec1f26456a02c42ed7cb02eca7d8511333f98bc9b31e5f68ce1665d5"
        );
        assert!(
            scramble_password("caching_sha2_password", "", &scramble)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            scramble_password("mysql_clear_password", "pw", &scramble).unwrap(),
            b"pw\0"
        );
        assert!(matches!(
            scramble_password("client_ed25519", "pw", &scramble),
            Err(Failure::Unsupported(_))
        ));
    }

    #[test]
    fn err_packets_keep_the_servers_code_state_and_words() {
        let mut packet = vec![0xff, 0x15, 0x04, b'#'];
        packet.extend_from_slice(b"28000Access denied for user 'app'@'localhost'");
        let error = server_error(&packet);
        assert_eq!(
            error.to_string(),
            "ERROR 1045 (28000): Access denied for user 'app'@'localhost'"
        );
        // Before the login, servers send ERR without a SQLSTATE.
        let early = server_error(b"\xff\x10\x04Too many connections");
        assert_eq!(early.to_string(), "ERROR 1040: Too many connections");
        assert_eq!(server_error(b"\xff").code, 0);
    }

    #[test]
    fn lengths_round_trip_and_short_packets_are_errors() {
        for value in [0u64, 250, 251, 0xffff, 0x1_0000, 0xff_ffff, 0x100_0000] {
            let mut bytes = Vec::new();
            push_lenenc(&mut bytes, value);
            assert_eq!(Reader(&bytes).lenenc().unwrap(), value);
        }
        assert!(Reader(&[0xfc, 1]).lenenc().is_err());
        assert!(Reader(b"no nul").nul_string().is_err());
        assert!(Reader(&[]).u8().is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

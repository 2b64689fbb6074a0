//! HPACK (RFC 7541), the header compression of HTTP/2, as a client making one call needs it:
//! headers sent as plain literals (never indexed, never compressed), and a full decoder for the
//! server's answer, since a server may use its static and dynamic tables and Huffman coding.

use std::collections::VecDeque;

/// The dynamic table's size until the server says otherwise (RFC 7541, 4.2).
const DEFAULT_TABLE_SIZE: usize = 4096;
/// Headers that decode to more than this are refused: a health answer has a handful.
const MAX_DECODED: usize = 64 * 1024;

/// Encodes headers as "literal header field without indexing, new name", no Huffman: the
/// simplest form every decoder accepts.
pub fn encode(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers {
        block.push(0);
        push_string(&mut block, name.as_bytes());
        push_string(&mut block, value.as_bytes());
    }
    block
}

fn push_string(block: &mut Vec<u8>, text: &[u8]) {
    push_integer(block, 7, 0, text.len());
    block.extend_from_slice(text);
}

/// An integer with an N-bit prefix (RFC 7541, 5.1); `flags` are the bits above the prefix.
fn push_integer(block: &mut Vec<u8>, prefix_bits: u8, flags: u8, mut value: usize) {
    let limit = (1usize << prefix_bits) - 1;
    if value < limit {
        block.push(flags | value as u8);
        return;
    }
    block.push(flags | limit as u8);
    value -= limit;
    while value >= 0x80 {
        block.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    block.push(value as u8);
}

/// The decoding side of one connection: its dynamic table lives as long as the connection.
pub struct Decoder {
    table: VecDeque<(String, String)>,
    size: usize,
    max: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: DEFAULT_TABLE_SIZE,
        }
    }

    /// Decodes one header block (HEADERS plus any CONTINUATION frames).
    pub fn decode(&mut self, mut block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut headers = Vec::new();
        let mut decoded = 0;
        while let Some(&first) = block.first() {
            let (name, value) = if first & 0x80 != 0 {
                // Indexed header field.
                let index = integer(&mut block, 7)?;
                self.entry(index)?
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing: it joins the dynamic table.
                let (name, value) = self.literal(&mut block, 6)?;
                self.insert(name.clone(), value.clone());
                (name, value)
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update; we never allow more than the default.
                let max = integer(&mut block, 5)?;
                if max > DEFAULT_TABLE_SIZE {
                    return Err(format!(
                        "table size {max} above the allowed {DEFAULT_TABLE_SIZE}"
                    ));
                }
                self.max = max;
                self.evict();
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                self.literal(&mut block, 4)?
            };
            decoded += name.len() + value.len();
            if decoded > MAX_DECODED {
                return Err("header block too large".into());
            }
            headers.push((name, value));
        }
        Ok(headers)
    }

    fn literal(&self, block: &mut &[u8], prefix_bits: u8) -> Result<(String, String), String> {
        let index = integer(block, prefix_bits)?;
        let name = if index == 0 {
            string(block)?
        } else {
            self.entry(index)?.0
        };
        Ok((name, string(block)?))
    }

    fn entry(&self, index: usize) -> Result<(String, String), String> {
        match index {
            0 => Err("header index 0".into()),
            1..=61 => {
                let (name, value) = STATIC_TABLE[index - 1];
                Ok((name.to_string(), value.to_string()))
            }
            _ => self
                .table
                .get(index - 62)
                .cloned()
                .ok_or_else(|| format!("header index {index} beyond the table")),
        }
    }

    fn insert(&mut self, name: String, value: String) {
        self.size += entry_size(&name, &value);
        self.table.push_front((name, value));
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some((name, value)) => self.size -= entry_size(&name, &value),
                None => break,
            }
        }
    }
}

fn entry_size(name: &str, value: &str) -> usize {
    name.len() + value.len() + 32
}

fn integer(block: &mut &[u8], prefix_bits: u8) -> Result<usize, String> {
    let (&first, mut rest) = block.split_first().ok_or("truncated integer")?;
    let limit = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & limit;
    if value == limit {
        let mut shift = 0;
        loop {
            let (&byte, after) = rest.split_first().ok_or("truncated integer")?;
            rest = after;
            if shift > 28 {
                return Err("integer too large".into());
            }
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *block = rest;
    Ok(value)
}

fn string(block: &mut &[u8]) -> Result<String, String> {
    let huffman = block.first().is_some_and(|byte| byte & 0x80 != 0);
    let length = integer(block, 7)?;
    if length > block.len() {
        return Err("truncated string".into());
    }
    let (raw, rest) = block.split_at(length);
    *block = rest;
    let bytes = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Decodes Huffman-coded bytes bit by bit against the code table; what is left at the end must
/// be fewer than 8 bits, all ones (the start of EOS).
fn huffman_decode(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 8 / 5);
    let (mut code, mut length) = (0u32, 0u8);
    for byte in data {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            length += 1;
            if length > 30 {
                return Err("bad Huffman code".into());
            }
            if let Some(symbol) = HUFFMAN
                .iter()
                .position(|&(candidate, bits)| bits == length && candidate == code)
            {
                if symbol == 256 {
                    return Err("EOS in a Huffman string".into());
                }
                out.push(symbol as u8);
                (code, length) = (0, 0);
            }
        }
    }
    if length >= 8 || code != (1 << length) - 1 {
        return Err("bad Huffman padding".into());
    }
    Ok(out)
}

/// RFC 7541, Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541, Appendix B: the code (right-aligned) and its length in bits for each symbol 0-255,
/// then EOS.
const HUFFMAN: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_the_rfcs_huffman_examples_with_the_dynamic_table() {
        // RFC 7541, C.4.1 and C.4.2: the second block refers to the first one's entry.
        let mut decoder = Decoder::new();
        let first = decoder
            .decode(&hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))
            .unwrap();
        assert_eq!(
            pairs(&first),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ]
        );
        let second = decoder.decode(&hex("828684be5886a8eb10649cbf")).unwrap();
        assert_eq!(
            pairs(&second),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ]
        );
    }

    #[test]
    fn what_is_encoded_decodes_back() {
        let long = "x".repeat(300);
        let headers = [
            (":path", "/grpc.health.v1.Health/Check"),
            ("te", long.as_str()),
        ];
        let decoded = Decoder::new().decode(&encode(&headers)).unwrap();
        assert_eq!(pairs(&decoded), headers);
    }

    #[test]
    fn bad_blocks_are_errors_not_panics() {
        for bad in [
            &[0x80][..],                           // index 0
            &[0xbf],                   // index 62 with an empty dynamic table (truncated too)
            &[0xc0],                   // index 64, beyond the table
            &[0x00, 0x05, b'a'],       // truncated string
            &[0x3f, 0xe2, 0x1f],       // table size 4097, above 4096
            &[0x00, 0x81, 0x00, 0x00], // bad Huffman padding
            &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff], // integer overflow
        ] {
            assert!(Decoder::new().decode(bad).is_err(), "{bad:02x?}");
        }
    }
}

//! Byte-level framing of the TWS API socket: the `API\0` greeting, the version negotiation and
//! length-prefixed frames.
//!
//! Parsing works on a caller-owned `BytesMut` so that the connection can read with
//! `read_buf` inside `select!` (cancellation safe: a partial frame simply stays in the buffer).

use bytes::{Buf, BytesMut};

/// Highest server version a current IB Gateway claims (and the simulator's default).
pub const SERVER_MAX_VERSION: u32 = 226;
/// The API's floor: the lowest version a gateway serves (the official client's
/// `MIN_CLIENT_VER`). A client whose range lies wholly below it is closed without an answer.
pub const MIN_VERSION: u32 = 100;
/// Versions at or below this use the text codec.
pub const TEXT_MAX_VERSION: u32 = 200;
/// Versions at or above this use protobuf for every message.
pub const PROTOBUF_MIN_VERSION: u32 = 213;
/// Largest frame a client may send us. Real requests are a few hundred bytes; anything bigger is
/// hostile or broken, and refusing it keeps memory per connection bounded.
pub const MAX_CLIENT_FRAME: usize = 1 << 20;

/// The four bytes every client sends before anything else.
pub const GREETING: &[u8; 4] = b"API\0";

/// Why the byte stream from a client cannot be accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The connection did not start with `API\0`.
    #[error("bad greeting: expected \"API\\0\"")]
    BadGreeting,
    /// A frame announced a length above [`MAX_CLIENT_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_CLIENT_FRAME}-byte limit")]
    TooLarge(usize),
    /// The version string is not `vMIN..MAX` or `vN`.
    #[error("unparseable version range {0:?}")]
    BadVersion(String),
}

/// Which encoding a negotiated connection uses in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// NUL-separated text, message id as the first field (version ≤ 200).
    Text,
    /// 4-byte binary message id; ids above 200 carry protobuf (version ≥ 213).
    Protobuf,
}

impl Codec {
    /// The codec a negotiated server version implies.
    pub fn for_version(version: u32) -> Self {
        if version >= PROTOBUF_MIN_VERSION { Codec::Protobuf } else { Codec::Text }
    }
}

/// The client's advertised version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    /// Lowest version the client accepts.
    pub min: u32,
    /// Highest version the client speaks.
    pub max: u32,
}

impl VersionRange {
    /// Parses `v157..178`, `v100..226 +PACEAPI` or the old single form `v100`.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let bad = || FrameError::BadVersion(text.chars().take(64).collect());
        let spec = text.split(' ').next().unwrap_or_default();
        let spec = spec.strip_prefix('v').ok_or_else(bad)?;
        let (min, max) = match spec.split_once("..") {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let v = spec.parse().map_err(|_| bad())?;
                (v, v)
            }
        };
        if min > max {
            return Err(bad());
        }
        Ok(Self { min, max })
    }

    /// What a gateway answers: the client's max capped at ours, with 201..=212 capped to 200
    /// (the mixed range whose exact rules nobody has verified). `None` when no version satisfies
    /// both sides, or when the client's max is below [`MIN_VERSION`] (a gateway serves nothing
    /// older, and a version 0 would mean no version at all).
    pub fn negotiate(self, server_max: u32) -> Option<u32> {
        let mut v = self.max.min(server_max);
        if v > TEXT_MAX_VERSION && v < PROTOBUF_MIN_VERSION {
            v = TEXT_MAX_VERSION;
        }
        (v >= self.min && v >= MIN_VERSION).then_some(v)
    }
}

/// Takes the greeting and the version frame off the front of `buf` once both are complete.
pub fn take_handshake(buf: &mut BytesMut) -> Result<Option<VersionRange>, FrameError> {
    if buf.len() < GREETING.len() {
        if !GREETING.starts_with(&buf[..]) {
            return Err(FrameError::BadGreeting);
        }
        return Ok(None);
    }
    if &buf[..4] != GREETING {
        return Err(FrameError::BadGreeting);
    }
    let Some(body) = peek_frame(&buf[4..])? else { return Ok(None) };
    let text = String::from_utf8_lossy(body).into_owned();
    let consumed = 4 + 4 + body.len();
    buf.advance(consumed);
    VersionRange::parse(text.trim_end_matches('\0')).map(Some)
}

/// Takes one complete frame body off the front of `buf`, if there is one.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
    let Some(len) = peek_frame(buf)?.map(<[u8]>::len) else { return Ok(None) };
    buf.advance(4);
    Ok(Some(buf.split_to(len)))
}

fn peek_frame(buf: &[u8]) -> Result<Option<&[u8]>, FrameError> {
    let Some(header) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > MAX_CLIENT_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(buf.get(4..4 + len))
}

/// The bytes a client opens with: the greeting and its version range (`v100..178`).
pub fn client_hello(range: &str) -> Vec<u8> {
    let mut out = GREETING.to_vec();
    put_frame(&mut out, range.as_bytes());
    out
}

/// The server's handshake answer body, text in every codec: `<version>\0<connection time>\0`.
pub fn server_hello(version: u32) -> Vec<u8> {
    format!("{version}\0{}\0", connection_time()).into_bytes()
}

/// Reads a server's handshake answer: the negotiated version and the connection time.
pub fn parse_server_hello(body: &[u8]) -> Option<(u32, String)> {
    let fields = crate::text::split(body);
    let version = fields.first()?.parse().ok()?;
    Some((version, fields.get(1).cloned().unwrap_or_default()))
}

/// The handshake's connection time, `YYYYMMDD HH:MM:SS EST`, as gateways print it. Fixed at
/// UTC−5 with the `EST` label every client parses; the wall-clock offset does not matter here.
fn connection_time() -> String {
    let est = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(-5)));
    format!("{} EST", est.strftime("%Y%m%d %H:%M:%S"))
}

/// Appends a length-prefixed frame holding `body` to any buffer (`Vec<u8>`, `BytesMut`).
pub fn put_frame(out: &mut impl bytes::BufMut, body: &[u8]) {
    out.put_u32(body.len() as u32);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_a_gateway() {
        let r = |min, max| VersionRange { min, max };
        assert_eq!(r(213, 226).negotiate(226), Some(226));
        assert_eq!(r(157, 178).negotiate(226), Some(178));
        assert_eq!(r(100, 226).negotiate(226), Some(226));
        assert_eq!(r(100, 205).negotiate(226), Some(200));
        assert_eq!(r(227, 230).negotiate(226), None);
        assert_eq!(r(213, 226).negotiate(200), None);
        // Below the API's floor of 100 nothing is served, however the ranges meet.
        assert_eq!(r(0, 0).negotiate(226), None);
        assert_eq!(r(38, 99).negotiate(226), None);
        assert_eq!(r(38, 100).negotiate(226), Some(100));
    }

    #[test]
    fn parses_version_forms() {
        assert_eq!(VersionRange::parse("v157..178").ok(), Some(VersionRange { min: 157, max: 178 }));
        assert_eq!(VersionRange::parse("v100..226 +PACEAPI").ok(), Some(VersionRange { min: 100, max: 226 }));
        assert_eq!(VersionRange::parse("v100").ok(), Some(VersionRange { min: 100, max: 100 }));
        assert!(VersionRange::parse("hello").is_err());
        assert!(VersionRange::parse("v9..1").is_err());
    }

    #[test]
    fn handshake_waits_for_complete_input_and_rejects_garbage() {
        let mut buf = BytesMut::from(&b"AP"[..]);
        assert_eq!(take_handshake(&mut buf), Ok(None));
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(take_handshake(&mut buf), Err(FrameError::BadGreeting));
        let mut buf = BytesMut::from(&b"API\0\0\0\0\x09v213..22"[..]);
        assert_eq!(take_handshake(&mut buf), Ok(None));
        buf.extend_from_slice(b"6\0\0\0\x04");
        assert_eq!(take_handshake(&mut buf), Ok(Some(VersionRange { min: 213, max: 226 })));
        assert_eq!(&buf[..], b"\0\0\0\x04", "the next frame's bytes stay buffered");
    }

    #[test]
    fn hellos_round_trip() {
        let mut buf = BytesMut::from(&client_hello("v100..178")[..]);
        assert_eq!(take_handshake(&mut buf), Ok(Some(VersionRange { min: 100, max: 178 })));
        let (v, time) = parse_server_hello(&server_hello(178)).expect("parses");
        assert_eq!(v, 178);
        assert!(time.ends_with(" EST"), "{time}");
    }

    #[test]
    fn frames_are_bounded() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(take_frame(&mut buf), Err(FrameError::TooLarge(_))));
        let mut out = Vec::new();
        put_frame(&mut out, b"abc");
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(take_frame(&mut buf).ok().flatten().as_deref(), Some(&b"abc"[..]));
        assert!(buf.is_empty());
    }
}

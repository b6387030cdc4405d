//! What a front-door session has produced for its client and the socket has not written yet:
//! framed replies in the connection's codec, with one byte budget for answers and pushes alike.
//!
//! The socket writes from [`Output::bytes`] and reports what it wrote with [`Output::written`],
//! so a write that stops halfway (a client that stopped reading, a shutdown) resumes at the first
//! unwritten byte, never at the first byte of the buffer.

use bytes::{Buf, BytesMut};
use tws_wire::frame::{self, Codec};
use tws_wire::{Reply, encode_reply};

/// Output a session builds before it stops producing and waits for the socket: a client sending
/// many requests in one read, or followed by many subscriptions that all change at once, is
/// served in slices of about this size, so what one client costs stays bounded.
pub(super) const BUDGET: usize = 256 * 1024;
/// A buffer that grew past this for one large answer is given back once it has been written.
const KEEP: usize = 64 * 1024;

#[derive(Debug)]
pub(super) struct Output {
    buf: BytesMut,
    codec: Codec,
    version: u32,
    budget: usize,
}

impl Output {
    pub(super) fn new(budget: usize) -> Self {
        Self { buf: BytesMut::new(), codec: Codec::Text, version: 0, budget }
    }

    /// The codec and version replies are encoded at from now on.
    pub(super) fn negotiated(&mut self, codec: Codec, version: u32) {
        self.codec = codec;
        self.version = version;
    }

    pub(super) fn codec(&self) -> Codec {
        self.codec
    }

    pub(super) fn version(&self) -> u32 {
        self.version
    }

    /// Appends `reply`, framed.
    pub(super) fn send(&mut self, reply: &Reply) {
        self.put_frame(&encode_reply(reply, self.codec, self.version));
    }

    /// Appends `body` as one frame.
    pub(super) fn put_frame(&mut self, body: &[u8]) {
        frame::put_frame(&mut self.buf, body);
    }

    /// Appends bytes that are already framed.
    pub(super) fn put_framed(&mut self, framed: &[u8]) {
        self.buf.extend_from_slice(framed);
    }

    /// Whether the budget is used up: time to stop producing and write.
    pub(super) fn full(&self) -> bool {
        self.buf.len() >= self.budget
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What is still to be written, from the first unwritten byte.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The socket wrote the first `n` bytes of [`Output::bytes`].
    pub(super) fn written(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
        if self.buf.is_empty() && self.buf.capacity() > KEEP {
            // A client that asked for a lot once must not keep a large buffer.
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_write_resumes_at_the_first_unwritten_byte() {
        let mut out = Output::new(BUDGET);
        out.put_frame(b"abc");
        out.put_frame(b"de");
        let all = out.bytes().to_vec();
        out.written(5);
        assert_eq!(out.bytes(), &all[5..]);
        out.put_frame(b"f");
        assert_eq!(out.bytes(), [&all[5..], &[0, 0, 0, 1, b'f'][..]].concat());
        out.written(out.bytes().len());
        assert!(out.is_empty());
    }
}

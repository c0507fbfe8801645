//! Bare LF in HTTP/1.1 request heads (RFC 9112 §2.2, issue 9).
//!
//! hyper's parser (httparse) accepts a lone `\n` as a line end, and has no
//! switch to refuse it. A front proxy that reads such a head differently
//! could be made to see other requests than the gateway does (request
//! smuggling), so Menshen refuses them. [`HeadScanner`] follows the
//! HTTP/1.1 framing of the bytes the client sends (heads, `Content-Length`
//! bodies, chunked bodies and their trailers) and reports a bare LF anywhere
//! in a head, a chunk-size line or the trailers. It only watches: the bytes
//! reach hyper unchanged, and the `edge` stage refuses a request on a
//! connection where one was seen (400, connection closed).
//!
//! A connection that starts with the HTTP/2 preface is not scanned. Framing
//! the scanner cannot follow is refused like a bare LF, so a request is
//! never served unscanned; hyper's own head limit is set to the scanner's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::Slot;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest request head; hyper is set to refuse larger ones too.
pub const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first bytes: HTTP/2 preface or not.
    Start,
    /// Not scanning (HTTP/2, or framing we cannot follow: hyper refuses it).
    Off,
    /// In a request head.
    Head,
    /// In a `Content-Length` body: bytes left.
    Body(u64),
    /// In a chunk-size line.
    ChunkSize,
    /// In chunk data: bytes left, then CRLF.
    ChunkData(u64),
    /// The CRLF after chunk data.
    ChunkEnd,
    /// In the trailer section.
    Trailers,
}

/// Follows HTTP/1.1 framing over a byte stream and flags bare LFs.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    start: Vec<u8>,
    line: Vec<u8>,
    /// The part of a head line that arrived in an earlier read.
    head: Vec<u8>,
    prev: u8,
    /// The framing of the head being read.
    framing: HeadFraming,
    /// Whether a bare LF was seen, or framing the scanner cannot follow
    /// (a head over 64 KiB, a chunk-size line over 1 KiB or empty, a
    /// `Transfer-Encoding` other than chunked, conflicting `Content-Length`):
    /// either way the connection is refused, never left unscanned.
    pub bare_lf: bool,
}

/// What the head being read says about its body.
#[derive(Debug, Default)]
struct HeadFraming {
    /// The request line was read.
    started: bool,
    /// Bytes of this head so far.
    bytes: usize,
    content_length: Option<u64>,
    chunked: bool,
    /// Framing we do not follow (hyper refuses it, or it is ambiguous).
    unfollowable: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Start,
            start: Vec::new(),
            line: Vec::new(),
            head: Vec::new(),
            prev: 0,
            framing: HeadFraming::default(),
            bare_lf: false,
        }
    }
}

/// The value of header line `line` if its name is `name` (ASCII case-insensitive).
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (k, rest) = (line.get(..name.len())?, line.get(name.len()..)?);
    if !k.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = rest.trim_ascii_start();
    rest.strip_prefix(b":").map(|v| v.trim_ascii())
}

impl HeadFraming {
    /// Take in one header line (without its line end).
    fn header(&mut self, line: &[u8]) {
        if let Some(v) = header_value(line, b"transfer-encoding") {
            self.chunked = v
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|l| l.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            self.unfollowable |= !self.chunked;
        } else if let Some(v) = header_value(line, b"content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            match n {
                Some(n) if self.content_length.is_none_or(|l| l == n) => {
                    self.content_length = Some(n)
                }
                _ => self.unfollowable = true,
            }
        }
    }

    /// Where the bytes after the head belong (`Off` for framing the
    /// scanner cannot follow: the caller refuses the connection).
    fn next_state(&self) -> State {
        if self.unfollowable {
            State::Off
        } else if self.chunked {
            State::ChunkSize
        } else {
            match self.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        }
    }
}

impl Scanner {
    /// Whether part of a request head has arrived and its end has not (a
    /// header timeout then is a slow client, not an idle connection).
    pub fn head_pending(&self) -> bool {
        self.state == State::Head && self.framing.bytes > 0
    }

    /// Feed bytes the client sent.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.bare_lf {
            match self.state {
                State::Off => return,
                State::Start => {
                    let b = data[0];
                    data = &data[1..];
                    self.start.push(b);
                    if !H2_PREFACE.starts_with(&self.start) {
                        self.state = State::Head;
                        let seen = std::mem::take(&mut self.start);
                        self.feed(&seen);
                    } else if self.start.len() == H2_PREFACE.len() {
                        self.state = State::Off;
                    }
                }
                State::Body(n) => {
                    let take = (n.min(data.len() as u64)) as usize;
                    data = &data[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                    self.prev = 0;
                }
                State::ChunkData(n) => {
                    let take = (n.min(data.len() as u64)) as usize;
                    data = &data[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    self.prev = 0;
                }
                State::Head => data = self.head_lines(data),
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let b = data[0];
                    data = &data[1..];
                    self.byte(b);
                }
            }
        }
    }

    /// Scan `data` in a head up to and including its next LF (line by line,
    /// with a SIMD search for the LF: heads are most of what is scanned);
    /// returns the rest.
    fn head_lines<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Some(i) = memchr::memchr(b'\n', data) else {
            self.framing.bytes += data.len();
            if self.framing.bytes > MAX_HEAD {
                self.bare_lf = true;
                return &[];
            }
            self.head.extend_from_slice(data);
            if let Some(&last) = data.last() {
                self.prev = last;
            }
            return &[];
        };
        let before = if i == 0 { self.prev } else { data[i - 1] };
        if before != b'\r' {
            self.bare_lf = true;
            return &[];
        }
        self.framing.bytes += i + 1;
        if self.framing.bytes > MAX_HEAD {
            self.bare_lf = true;
            return &[];
        }
        self.prev = b'\n';
        if self.head.is_empty() {
            self.end_line(&data[..i - usize::from(i > 0)]);
        } else {
            let mut line = std::mem::take(&mut self.head);
            line.extend_from_slice(&data[..i]);
            line.pop(); // the CR (checked above)
            self.end_line(&line);
            line.clear();
            self.head = line;
        }
        &data[i + 1..]
    }

    /// One complete head line (without CRLF).
    fn end_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            // Empty lines before a request line are allowed (RFC 9112 §2.2);
            // after it, the empty line ends the head.
            if self.framing.started {
                self.state = self.framing.next_state();
                self.bare_lf |= self.state == State::Off;
                self.framing = HeadFraming::default();
            }
        } else if !self.framing.started {
            self.framing.started = true;
        } else {
            self.framing.header(line);
        }
    }

    fn byte(&mut self, b: u8) {
        if b == b'\n' && self.prev != b'\r' {
            self.bare_lf = true;
            return;
        }
        self.prev = b;
        match self.state {
            State::ChunkSize => {
                self.line.push(b);
                if self.line.ends_with(b"\r\n") {
                    let l = String::from_utf8_lossy(&self.line[..self.line.len() - 2]).to_string();
                    self.line.clear();
                    let size = l.split(';').next().unwrap_or("").trim();
                    self.state = match u64::from_str_radix(size, 16) {
                        Ok(0) => State::Trailers,
                        Ok(n) => State::ChunkData(n),
                        Err(_) => {
                            self.bare_lf = true;
                            State::Off
                        }
                    };
                } else if self.line.len() > 1024 {
                    self.bare_lf = true;
                }
            }
            State::ChunkEnd => {
                self.line.push(b);
                if self.line.len() == 2 {
                    let ok = self.line == b"\r\n";
                    self.line.clear();
                    if ok {
                        self.state = State::ChunkSize;
                    } else {
                        self.bare_lf = true;
                    }
                }
            }
            State::Trailers => {
                self.line.push(b);
                if self.line.ends_with(b"\r\n") {
                    let empty = self.line.len() == 2;
                    self.line.clear();
                    if empty {
                        self.state = State::Head;
                    }
                } else if self.line.len() > MAX_HEAD {
                    self.bare_lf = true;
                }
            }
            _ => {}
        }
    }
}

/// An IO that shows every byte read to a [`Scanner`] and marks the
/// connection's slot when a bare LF appears.
pub struct HeadScanner<IO> {
    io: IO,
    scanner: Scanner,
    slot: Arc<Slot>,
}

impl<IO> HeadScanner<IO> {
    /// Watch `io` for the connection of `slot`.
    pub fn new(io: IO, slot: Arc<Slot>) -> Self {
        HeadScanner {
            io,
            scanner: Scanner::default(),
            slot,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadScanner<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            if this.scanner.state != State::Off && !this.scanner.bare_lf {
                this.scanner.feed(&buf.filled()[before..]);
                if this.scanner.bare_lf {
                    this.slot.mark_bare_lf();
                }
                this.slot.set_head_pending(this.scanner.head_pending());
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeadScanner<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> bool {
        let mut s = Scanner::default();
        for c in chunks {
            s.feed(c);
        }
        s.bare_lf
    }

    #[test]
    fn bare_lf_in_a_head_is_found_in_any_split() {
        let bad = b"GET / HTTP/1.1\r\nHost: a\nX-B: c\r\n\r\n";
        assert!(scan(&[bad]));
        for i in 1..bad.len() {
            assert!(scan(&[&bad[..i], &bad[i..]]), "split at {i}");
        }
        assert!(scan(&[b"GET / HTTP/1.1\n\n"]));
        assert!(!scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]));
    }

    #[test]
    fn bodies_are_skipped_and_the_next_head_is_scanned() {
        // A body full of bare LFs is not a head.
        let ok = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\na\nb\nc";
        assert!(!scan(&[ok]));
        let next_bad = [&ok[..], b"GET / HTTP/1.1\r\nHost: a\n\r\n"].concat();
        assert!(scan(&[&next_bad]));
        let next_ok = [&ok[..], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert!(!scan(&[&next_ok]));
        // Chunked: data skipped, size lines and trailers scanned.
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\nb\r\n0\r\nX-T: 1\r\n\r\n";
        assert!(!scan(&[chunked]));
        let bad_size =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\na\nb\r\n0\r\n\r\n";
        assert!(scan(&[bad_size]));
        let bad_trailer =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\r\n";
        assert!(scan(&[bad_trailer]));
    }

    #[test]
    fn valid_streams_pass_in_any_split_and_end_between_requests() {
        let ok: &[u8] = b"\r\nPOST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\na\nb\ncGET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\nb\r\n0\r\n\r\nGET /z HTTP/1.1\r\n\r\n";
        for i in 0..ok.len() {
            for j in i..ok.len() {
                let mut s = Scanner::default();
                s.feed(&ok[..i]);
                s.feed(&ok[i..j]);
                s.feed(&ok[j..]);
                assert!(!s.bare_lf, "split at {i}/{j}");
                assert_eq!(s.state, State::Head, "split at {i}/{j}");
            }
        }
    }

    #[test]
    fn http2_is_not_scanned() {
        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(b"\x00\x00\n\x04\n\n\n");
        assert!(!scan(&[&h2]));
        // One byte at a time, too.
        let mut s = Scanner::default();
        for b in &h2 {
            s.feed(&[*b]);
        }
        assert!(!s.bare_lf);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 7;
        for _ in 0..2000 {
            let mut s = Scanner::default();
            let mut buf = Vec::new();
            for _ in 0..64 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                buf.push(b"\r\n0123456789abcdefPOST /:;\x00\xff"[(x >> 16) as usize % 28]);
            }
            s.feed(&buf);
        }
    }
}

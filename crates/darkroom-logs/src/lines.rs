//! Splitting a byte stream into lines with one reusable buffer.
//!
//! Memory is bounded by the longest line, never by the stream: the buffer starts at
//! [`DEFAULT_CAPACITY`] and only grows when a single line does not fit.

use std::io::{ErrorKind, Read};

/// Initial buffer size: large enough that `read` calls are rare and lines almost never straddle
/// a refill.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Most bytes asked of the reader at once. Refills always start at the front of the buffer, so
/// with reads of this size the bytes just copied in are still in the CPU's L2 cache when they
/// are parsed; the rest of the buffer only serves long lines.
const READ_CHUNK: usize = 256 << 10;

/// One line of input, borrowed from the reader's buffer until the next call to
/// [`LineReader::next_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The bytes of the line without its `'\n'`; a trailing `'\r'` is kept, so quarantine can
    /// store the line byte-exact.
    pub raw: &'a [u8],
    /// `raw` without a trailing `'\r'`: what parsers should see.
    pub text: &'a [u8],
    /// 1-based line number.
    pub number: u64,
    /// False only for a last line that has no `'\n'`.
    pub terminated: bool,
}

/// Streams lines from any reader (a file, or a decompressor the caller wraps around one).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// End of the valid bytes in `buf`.
    end: usize,
    /// Bytes in `start..scanned` are known to hold no `'\n'`, so a refill does not rescan them.
    scanned: usize,
    eof: bool,
    line_number: u64,
    bytes_read: u64,
}

impl<R: Read> LineReader<R> {
    /// A reader with the default 1 MiB buffer.
    pub fn new(r: R) -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, r)
    }

    /// A reader whose buffer starts at `cap` bytes (at least 1); it grows for longer lines.
    pub fn with_capacity(cap: usize, r: R) -> Self {
        Self {
            inner: r,
            buf: vec![0; cap.max(1)],
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            line_number: 0,
            bytes_read: 0,
        }
    }

    /// The next line, or `None` at the end of the stream. An empty line (`"\n"`) is yielded as
    /// an empty [`Line`]; an empty stream yields no lines.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let nl = self.scanned + i;
                let line_start = self.start;
                self.start = nl + 1;
                self.scanned = self.start;
                return Ok(Some(self.make_line(line_start, nl, true)));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (line_start, line_end) = (self.start, self.end);
                self.start = self.end;
                return Ok(Some(self.make_line(line_start, line_end, false)));
            }
            self.fill()?;
        }
    }

    /// Raw bytes consumed so far, including line terminators.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn make_line(&mut self, start: usize, end: usize, terminated: bool) -> Line<'_> {
        self.line_number += 1;
        self.bytes_read += (end - start + usize::from(terminated)) as u64;
        let raw = &self.buf[start..end];
        let text = raw.strip_suffix(b"\r").unwrap_or(raw);
        Line {
            raw,
            text,
            number: self.line_number,
            terminated,
        }
    }

    /// Reads more bytes after the pending partial line, compacting or growing the buffer first.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len().saturating_mul(2);
            self.buf.resize(grown, 0);
        }
        let limit = self.buf.len().min(self.end + READ_CHUNK);
        loop {
            match self.inner.read(&mut self.buf[self.end..limit]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `chunk` bytes per call, like a decompressor does.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn collect(data: &[u8], cap: usize, chunk: usize) -> Vec<(Vec<u8>, Vec<u8>, u64, bool)> {
        let mut r = LineReader::with_capacity(cap, Chunked { data, chunk });
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.raw.to_vec(), l.text.to_vec(), l.number, l.terminated));
        }
        assert_eq!(r.bytes_read(), data.len() as u64);
        out
    }

    #[test]
    fn empty_stream_has_no_lines() {
        assert!(collect(b"", 16, 16).is_empty());
    }

    #[test]
    fn splits_lines_keeps_empty_lines_and_crlf_in_raw() {
        for (cap, chunk) in [(1, 1), (3, 2), (16, 5), (1 << 20, 1 << 20)] {
            let got = collect(b"a\n\nbc\r\nlast", cap, chunk);
            assert_eq!(
                got,
                vec![
                    (b"a".to_vec(), b"a".to_vec(), 1, true),
                    (vec![], vec![], 2, true),
                    (b"bc\r".to_vec(), b"bc".to_vec(), 3, true),
                    (b"last".to_vec(), b"last".to_vec(), 4, false),
                ],
                "cap {cap} chunk {chunk}"
            );
        }
    }

    #[test]
    fn final_newline_does_not_make_an_extra_line() {
        let got = collect(b"x\ny\n", 4, 3);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| l.3));
    }

    #[test]
    fn a_line_longer_than_the_buffer_grows_it() {
        let long = vec![b'u'; 1_000_000];
        let mut data = b"first\n".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\nafter\n");
        let got = collect(&data, 64 * 1024, 32 * 1024);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, long);
        assert_eq!(got[2].0, b"after");
    }

    #[test]
    fn io_errors_are_returned() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut r = LineReader::new(Failing);
        assert!(r.next_line().is_err());
    }
}

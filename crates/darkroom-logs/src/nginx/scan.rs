//! Byte scanning tuned for the short distances inside a log line.
//!
//! Field separators are usually a few to a few dozen bytes away, where calling into `memchr`
//! costs more than it saves. These helpers test eight bytes at a time in a `u64` (SWAR) and hand
//! over to `memchr` only once a search has gone 64 bytes without a match.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
/// After this many bytes without a match, `memchr`'s vector loop wins.
const SWAR_LIMIT: usize = 64;

/// Position of the first `needle` in `hay`.
#[inline(always)]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let pattern = LO * u64::from(needle);
    let (words, tail) = hay.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word) ^ pattern;
        // Exact for the lowest matching byte: borrows only create false bits above a true one.
        let hits = x.wrapping_sub(LO) & !x & HI;
        if hits != 0 {
            return Some(i * 8 + (hits.trailing_zeros() / 8) as usize);
        }
        if i * 8 + 8 >= SWAR_LIMIT {
            let from = i * 8 + 8;
            return memchr::memchr(needle, &hay[from..]).map(|p| from + p);
        }
    }
    let base = words.len() * 8;
    tail.iter().position(|&b| b == needle).map(|p| base + p)
}

/// `(every byte is ASCII, some byte is a backslash)`: one branch-free pass over the line that
/// the compiler turns into vector compares.
#[inline(always)]
pub(crate) fn ascii_and_backslash(line: &[u8]) -> (bool, bool) {
    let (mut high, mut backslash) = (0_u8, 0_u8);
    for &b in line {
        high |= b;
        backslash |= u8::from(b == b'\\');
    }
    (high < 0x80, backslash != 0)
}

/// Position of the last `needle` in `hay`, scanning from the end byte by byte (for short tails
/// such as the protocol of a request line).
#[inline(always)]
pub(crate) fn rfind_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    for (i, &b) in hay.iter().enumerate().rev().take(16) {
        if b == needle {
            return Some(i);
        }
    }
    memchr::memrchr(needle, &hay[..hay.len().saturating_sub(16)])
}

/// Literal text of a format, matched with one masked 8-byte comparison when it is short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Literal {
    pub bytes: Vec<u8>,
    word: u64,
    mask: u64,
}

impl Literal {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        let (mut word, mut mask) = (0, 0);
        if bytes.len() <= 8 {
            for (i, &b) in bytes.iter().enumerate() {
                word |= u64::from(b) << (8 * i);
                mask |= 0xFF << (8 * i);
            }
        }
        Self { bytes, word, mask }
    }

    /// True when `line[at..]` starts with this literal.
    #[inline(always)]
    pub(crate) fn is_at(&self, line: &[u8], at: usize) -> bool {
        let Some(rest) = line.get(at..) else {
            return false;
        };
        match rest.first_chunk::<8>() {
            Some(w) if self.bytes.len() <= 8 => u64::from_le_bytes(*w) & self.mask == self.word,
            _ => starts_with(rest, &self.bytes),
        }
    }
}

/// `hay.starts_with(prefix)` without a call to `memcmp` for the short literals of a format.
#[inline(always)]
pub(crate) fn starts_with(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay.iter().zip(prefix).all(|(a, b)| a == b)
}

/// `a == b` for short strings (timestamps), compared eight bytes at a time.
#[inline(always)]
pub(crate) fn eq_short(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (aw, at) = a.as_chunks::<8>();
    let (bw, bt) = b.as_chunks::<8>();
    aw.iter()
        .zip(bw)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && at.iter().zip(bt).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_matches_position_and_memchr() {
        let mut rng = 0x1234_5678_u64;
        for len in 0..200 {
            let hay: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    b"ab \"\x80\x01"[(rng % 6) as usize]
                })
                .collect();
            for needle in [b' ', b'"', 0x80, 0x01, b'z'] {
                assert_eq!(
                    find_byte(needle, &hay),
                    memchr::memchr(needle, &hay),
                    "{len} {needle}"
                );
                assert_eq!(
                    rfind_byte(needle, &hay),
                    memchr::memrchr(needle, &hay),
                    "{len} {needle}"
                );
            }
        }
        assert_eq!(find_byte(b'x', &[0; 100]), None);
    }

    #[test]
    fn line_facts() {
        assert_eq!(ascii_and_backslash(b""), (true, false));
        assert_eq!(ascii_and_backslash(b"0123456789abcdefghij"), (true, false));
        assert_eq!(ascii_and_backslash(b"0123456789abcdefghij\\"), (true, true));
        assert_eq!(
            ascii_and_backslash("0123456789abcdefghé".as_bytes()),
            (false, false)
        );
        assert_eq!(
            ascii_and_backslash("é\\0123456789abcdefgh".as_bytes()),
            (false, true)
        );
    }

    #[test]
    fn comparisons() {
        assert!(starts_with(b"\" \"abc", b"\" \""));
        assert!(!starts_with(b"\" ", b"\" \""));
        assert!(starts_with(b"x", b""));
        let lit = Literal::new(b"\" \"".to_vec());
        assert!(lit.is_at(b"ab\" \"cdefghijk", 2));
        assert!(lit.is_at(b"ab\" \"", 2));
        assert!(!lit.is_at(b"ab\" \"", 3));
        assert!(!lit.is_at(b"ab\" ", 2));
        assert!(!lit.is_at(b"ab", 9));
        assert!(Literal::new(Vec::new()).is_at(b"ab", 2));
        let long = Literal::new(b"0123456789".to_vec());
        assert!(long.is_at(b"x0123456789y", 1));
        assert!(!long.is_at(b"x012345678y", 1));
        assert!(eq_short(
            b"10/Oct/2000:13:55:36 -0700",
            b"10/Oct/2000:13:55:36 -0700"
        ));
        assert!(!eq_short(
            b"10/Oct/2000:13:55:36 -0700",
            b"10/Oct/2000:13:55:37 -0700"
        ));
        assert!(!eq_short(
            b"10/Oct/2000:13:55:36 -0700",
            b"10/Oct/2000:13:55:36 -070"
        ));
    }
}

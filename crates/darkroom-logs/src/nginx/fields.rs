//! Field values: nginx escapes, numbers, the request line and the IP policy.

use std::fmt::Write as _;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::IpPolicy;

/// Appends `src` to `out` with nginx's escapes decoded: `\xHH` is the byte HH, `\"` is `"`,
/// `\\` is `\`. Any other backslash is kept as it is.
pub(crate) fn decode_escapes(src: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\\', &src[i..]) {
        let at = i + p;
        out.extend_from_slice(&src[i..at]);
        match src.get(at + 1..) {
            Some([b'x', h, l, ..]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                out.push((hex_value(*h) << 4) | hex_value(*l));
                i = at + 4;
            }
            Some([c @ (b'"' | b'\\'), ..]) => {
                out.push(*c);
                i = at + 2;
            }
            _ => {
                out.push(b'\\');
                i = at + 1;
            }
        }
    }
    out.extend_from_slice(&src[i..]);
}

fn hex_value(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        b'a'..=b'f' => h - b'a' + 10,
        _ => h - b'A' + 10,
    }
}

/// True when the byte at `at` is preceded by an odd number of backslashes after `from`.
#[inline]
pub(crate) fn is_escaped(line: &[u8], from: usize, at: usize) -> bool {
    line[from..at]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count()
        % 2
        == 1
}

/// Why a number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    NotANumber,
    TooLarge,
}

/// A decimal integer with an optional leading `-`.
#[inline]
pub(crate) fn parse_int(text: &[u8]) -> Result<i64, NumberError> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(NumberError::NotANumber);
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(NumberError::NotANumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(b - b'0')))
            .ok_or(NumberError::TooLarge)?;
    }
    if negative {
        Ok(v)
    } else {
        v.checked_neg().ok_or(NumberError::TooLarge)
    }
}

/// A finite decimal such as `0.123`; exponents are accepted on the slow path.
#[inline]
pub(crate) fn parse_float(text: &[u8]) -> Result<f64, NumberError> {
    let dot = text.iter().position(|&b| b == b'.');
    let (int, frac) = match dot {
        Some(d) => (&text[..d], &text[d + 1..]),
        None => (text, &text[..0]),
    };
    let fast = !int.is_empty()
        && int.len() + frac.len() <= 15
        && (dot.is_none() || !frac.is_empty())
        && int.iter().chain(frac).all(u8::is_ascii_digit);
    if fast {
        let mantissa = int
            .iter()
            .chain(frac)
            .fold(0_i64, |v, &b| v * 10 + i64::from(b - b'0'));
        // Both operands are exact, so one division rounds correctly.
        return Ok(mantissa as f64 / 10_f64.powi(frac.len() as i32));
    }
    if text.is_empty()
        || !text
            .iter()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
    {
        return Err(NumberError::NotANumber);
    }
    let parsed: f64 = std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(NumberError::NotANumber)?;
    if parsed.is_finite() {
        Ok(parsed)
    } else {
        Err(NumberError::TooLarge)
    }
}

/// The two spaces of `METHOD SP TARGET SP PROTOCOL`, or None for anything else (`-`, TLS
/// handshakes, HTTP/0.9 requests), which the caller keeps whole as the path.
#[inline]
pub(crate) fn split_request(r: &[u8]) -> Option<(usize, usize)> {
    let first = super::scan::find_byte(b' ', r)?;
    // Nearly every request ends in " HTTP/x.y".
    let last = match r.len().checked_sub(9) {
        Some(i) if r[i] == b' ' && r[i + 1..].starts_with(b"HTTP/") => i,
        _ => super::scan::rfind_byte(b' ', r)?,
    };
    let method = &r[..first];
    let protocol = &r[last + 1..];
    let valid = last > first + 1
        && !method.is_empty()
        && method.iter().all(|&b| is_token(b))
        && protocol.len() > 5
        && protocol.starts_with(b"HTTP/");
    valid.then_some((first, last))
}

/// RFC 9110 `tchar`.
#[inline(always)]
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Applies an [`IpPolicy`] to client addresses, remembering the last input and output
/// (consecutive lines often come from the same client). Shared by the nginx and JSON-lines
/// parsers so both store addresses the same way.
pub struct IpMasker {
    policy: IpPolicy,
    salted: Option<Sha256>,
    last_in: Vec<u8>,
    last_out: String,
    cached: bool,
}

impl IpMasker {
    /// A masker for `policy`; a hashing salt is absorbed once here.
    pub fn new(policy: IpPolicy) -> Self {
        let salted = match &policy {
            IpPolicy::Hash { salt } => Some(Sha256::new_with_prefix(salt)),
            _ => None,
        };
        Self {
            policy,
            salted,
            last_in: Vec::new(),
            last_out: String::new(),
            cached: false,
        }
    }

    /// The stored form of `addr` (valid UTF-8): `None` to store it as it is, or the masked
    /// text; `Err` says why it cannot be stored.
    #[inline]
    pub fn apply(&mut self, addr: &[u8]) -> Result<Option<&str>, &'static str> {
        if let IpPolicy::Keep = self.policy {
            return Ok(None);
        }
        if self.cached && self.last_in == addr {
            return Ok(Some(&self.last_out));
        }
        self.cached = false;
        self.last_out.clear();
        match &self.policy {
            IpPolicy::Keep => {}
            IpPolicy::Truncate {
                v4_prefix,
                v6_prefix,
            } => {
                let ip: IpAddr = std::str::from_utf8(addr)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("is not an IP address, so it cannot be truncated")?;
                let masked = truncate_ip(ip, *v4_prefix, *v6_prefix);
                // Writing to a String cannot fail.
                let _ = write!(self.last_out, "{masked}");
            }
            IpPolicy::Hash { .. } => {
                let mut hasher = self.salted.clone().unwrap_or_default();
                hasher.update(addr);
                let digest = hasher.finalize();
                let mut hexed = [0_u8; 32];
                // 16 bytes always fit 32 hex characters, which are ASCII.
                if hex::encode_to_slice(&digest[..16], &mut hexed).is_ok()
                    && let Ok(text) = std::str::from_utf8(&hexed)
                {
                    self.last_out.push_str(text);
                }
            }
        }
        self.last_in.clear();
        self.last_in.extend_from_slice(addr);
        self.cached = true;
        Ok(Some(&self.last_out))
    }
}

/// Zeroes host bits; IPv4-mapped IPv6 addresses use the IPv4 prefix.
pub(crate) fn truncate_ip(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpAddr {
    let v4 = |a: std::net::Ipv4Addr| {
        let bits = u32::from(v4_prefix.min(32));
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        std::net::Ipv4Addr::from(u32::from(a) & mask)
    };
    match ip {
        IpAddr::V4(a) => IpAddr::V4(v4(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(mapped) => IpAddr::V6(v4(mapped).to_ipv6_mapped()),
            None => {
                let bits = u32::from(v6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) & mask))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decode_escapes(s, &mut out);
        out
    }

    #[test]
    fn escapes_decode_and_stray_backslashes_stay() {
        assert_eq!(decoded(br#"a\x22b\"c\\d"#), br#"a"b"c\d"#);
        assert_eq!(decoded(br"\xC3\xA9t\xc3\xa9"), "été".as_bytes());
        assert_eq!(decoded(br"\n\xZZ\x4"), br"\n\xZZ\x4");
        assert_eq!(decoded(br"end\"), br"end\");
        assert!(is_escaped(br#"a\""#, 0, 2));
        assert!(!is_escaped(br#"a\\""#, 0, 3));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_int(b"123"), Ok(123));
        assert_eq!(parse_int(b"-5"), Ok(-5));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int(b"9223372036854775808"),
            Err(NumberError::TooLarge)
        );
        assert_eq!(parse_int(b"12a"), Err(NumberError::NotANumber));
        assert_eq!(parse_int(b"-"), Err(NumberError::NotANumber));
        assert_eq!(parse_float(b"0.123"), Ok(0.123));
        assert_eq!(parse_float(b"12"), Ok(12.0));
        assert_eq!(parse_float(b"1e3"), Ok(1000.0));
        assert_eq!(parse_float(b"1."), Ok(1.0));
        assert_eq!(parse_float(b"nan"), Err(NumberError::NotANumber));
        assert_eq!(parse_float(b"1e999"), Err(NumberError::TooLarge));
        assert_eq!(parse_float(b"0.1.2"), Err(NumberError::NotANumber));
    }

    #[test]
    fn request_lines() {
        assert_eq!(split_request(b"GET /a?b=1 HTTP/1.1"), Some((3, 10)));
        assert_eq!(split_request(b"GET /a b HTTP/2.0"), Some((3, 8)));
        assert_eq!(split_request(b"GET /a HTTP/1.10"), Some((3, 6)));
        assert_eq!(split_request(b"GET HTTP/1.1"), None);
        for bad in [
            &b"-"[..],
            b"",
            b"GET /",
            b"GET  HTTP/1.1",
            b"\x16\x03 x HTTP/1.1",
            b"GET / FTP/1",
        ] {
            assert_eq!(split_request(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn ip_policies() {
        let mut t = IpMasker::new(IpPolicy::Truncate {
            v4_prefix: 24,
            v6_prefix: 48,
        });
        assert_eq!(t.apply(b"192.168.7.42"), Ok(Some("192.168.7.0")));
        assert_eq!(t.apply(b"192.168.7.42"), Ok(Some("192.168.7.0")));
        assert_eq!(t.apply(b"2001:db8:aa:bb::1"), Ok(Some("2001:db8:aa::")));
        assert_eq!(t.apply(b"::ffff:10.0.0.1"), Ok(Some("::ffff:10.0.0.0")));
        assert!(t.apply(b"unix:").is_err());
        let mut z = IpMasker::new(IpPolicy::Truncate {
            v4_prefix: 0,
            v6_prefix: 200,
        });
        assert_eq!(z.apply(b"1.2.3.4"), Ok(Some("0.0.0.0")));
        assert_eq!(z.apply(b"2001:db8::1"), Ok(Some("2001:db8::1")));
        let mut h = IpMasker::new(IpPolicy::Hash {
            salt: b"pepper".to_vec(),
        });
        let a = h.apply(b"1.2.3.4").unwrap().unwrap().to_owned();
        let expected = hex::encode(&Sha256::digest(b"pepper1.2.3.4")[..16]);
        assert_eq!(a, expected);
        assert_eq!(a.len(), 32);
        assert_ne!(h.apply(b"1.2.3.5").unwrap().unwrap(), a);
        assert_eq!(h.apply(b"1.2.3.4").unwrap().unwrap(), a);
        let mut k = IpMasker::new(IpPolicy::Keep);
        assert_eq!(k.apply(b"::1"), Ok(None));
    }
}

//! Timestamps by hand: fixed positions, no allocation, and caches so that lines repeating the
//! same second (the common case) cost one comparison.

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;

use super::format::TimeKind;

const MICROS_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// Larger `$msec` values are not plausible timestamps (and would overflow microseconds).
const MAX_EPOCH_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Converts timestamp text to (UTC microseconds, project-local date) with two caches:
/// the last text seen, and the UTC offset of the project zone for the last UTC hour.
pub(crate) struct Clock {
    tz: Tz,
    last_text: [u8; 32],
    last_len: usize,
    last_value: (i64, i32),
    hour: i64,
    /// The project zone's offset for the whole of `hour`, or None when it changes within it.
    hour_offset: Option<i32>,
}

impl Clock {
    pub(crate) fn new(tz: Tz) -> Self {
        Self {
            tz,
            last_text: [0; 32],
            last_len: usize::MAX,
            last_value: (0, 0),
            hour: i64::MIN,
            hour_offset: None,
        }
    }

    /// Parses `text` as `kind`; on failure returns the byte offset within `text` that is wrong
    /// and what was expected.
    #[inline]
    pub(crate) fn parse(
        &mut self,
        kind: TimeKind,
        text: &[u8],
    ) -> Result<(i64, i32), (usize, &'static str)> {
        if text.len() == self.last_len
            && super::scan::eq_short(text, &self.last_text[..self.last_len])
        {
            return Ok(self.last_value);
        }
        let micros = match kind {
            TimeKind::Local => parse_local(text)?,
            TimeKind::Iso8601 => parse_iso8601(text)?,
            TimeKind::Msec => parse_msec(text)?,
        };
        let value = (micros, self.local_date(micros));
        if text.len() <= self.last_text.len() {
            self.last_text[..text.len()].copy_from_slice(text);
            self.last_len = text.len();
            self.last_value = value;
        }
        Ok(value)
    }

    /// The date of a UTC instant in the project zone, as days since 1970-01-01.
    fn local_date(&mut self, micros: i64) -> i32 {
        let secs = micros.div_euclid(MICROS_PER_SEC);
        let hour = secs.div_euclid(3600);
        if hour != self.hour {
            let start = self.offset_at(hour * 3600);
            let end = self.offset_at(hour * 3600 + 3599);
            self.hour = hour;
            self.hour_offset = (start == end).then_some(start);
        }
        let offset = match self.hour_offset {
            Some(o) => o,
            // A zone transition inside this hour: look this second up exactly.
            None => self.offset_at(secs),
        };
        // Dates of parsed timestamps fit easily: years 0..=9999.
        (secs + i64::from(offset)).div_euclid(SECS_PER_DAY) as i32
    }

    fn offset_at(&self, secs: i64) -> i32 {
        match DateTime::from_timestamp(secs, 0) {
            Some(utc) => self
                .tz
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc(),
            None => 0,
        }
    }
}

#[inline]
fn digit(text: &[u8], i: usize) -> Result<i64, (usize, &'static str)> {
    match text.get(i) {
        Some(&b) if b.is_ascii_digit() => Ok(i64::from(b - b'0')),
        _ => Err((i, "a digit")),
    }
}

#[inline]
fn num(text: &[u8], at: usize, len: usize) -> Result<i64, (usize, &'static str)> {
    let mut v = 0;
    for i in at..at + len {
        v = v * 10 + digit(text, i)?;
    }
    Ok(v)
}

#[inline]
fn expect(
    text: &[u8],
    i: usize,
    byte: u8,
    what: &'static str,
) -> Result<(), (usize, &'static str)> {
    if text.get(i) == Some(&byte) {
        Ok(())
    } else {
        Err((i, what))
    }
}

fn month(name: &[u8]) -> Option<u32> {
    Some(match name {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Validated calendar fields to UTC microseconds; `offset_secs` is local minus UTC.
fn to_micros(
    (year, month, day): (i64, u32, i64),
    (hour, minute, second): (i64, i64, i64),
    offset_secs: i64,
    date_at: usize,
    time_at: usize,
) -> Result<i64, (usize, &'static str)> {
    if !(1..=12).contains(&month) {
        return Err((date_at, "a month from 01 to 12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err((date_at, "a day that exists in that month"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err((time_at, "a time from 00:00:00 to 23:59:59"));
    }
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_secs;
    Ok(secs * MICROS_PER_SEC)
}

/// `10/Oct/2000:13:55:36 -0700`
pub(crate) fn parse_local(t: &[u8]) -> Result<i64, (usize, &'static str)> {
    let day = num(t, 0, 2)?;
    expect(t, 2, b'/', "'/' after the day")?;
    let month = t
        .get(3..6)
        .and_then(month)
        .ok_or((3, "a month name such as 'Oct'"))?;
    expect(t, 6, b'/', "'/' after the month")?;
    let year = num(t, 7, 4)?;
    expect(t, 11, b':', "':' after the year")?;
    let hour = num(t, 12, 2)?;
    expect(t, 14, b':', "':' after the hour")?;
    let minute = num(t, 15, 2)?;
    expect(t, 17, b':', "':' after the minute")?;
    let second = num(t, 18, 2)?;
    expect(t, 20, b' ', "a space before the UTC offset")?;
    let sign = match t.get(21) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err((21, "'+' or '-' starting the UTC offset")),
    };
    let offset = sign * (num(t, 22, 2)? * 3600 + num(t, 24, 2)? * 60);
    if t.len() != 26 {
        return Err((
            26.min(t.len()),
            "the end of the time after the 4-digit UTC offset",
        ));
    }
    to_micros((year, month, day), (hour, minute, second), offset, 0, 12)
}

/// `2000-10-10T13:55:36-07:00`, also with `Z` or a fraction of a second.
pub(crate) fn parse_iso8601(t: &[u8]) -> Result<i64, (usize, &'static str)> {
    let year = num(t, 0, 4)?;
    expect(t, 4, b'-', "'-' after the year")?;
    let month = num(t, 5, 2)? as u32;
    expect(t, 7, b'-', "'-' after the month")?;
    let day = num(t, 8, 2)?;
    expect(t, 10, b'T', "'T' between date and time")?;
    let hour = num(t, 11, 2)?;
    expect(t, 13, b':', "':' after the hour")?;
    let minute = num(t, 14, 2)?;
    expect(t, 16, b':', "':' after the minute")?;
    let second = num(t, 17, 2)?;
    let mut i = 19;
    let mut frac = 0;
    if t.get(i) == Some(&b'.') {
        i += 1;
        let digits = t[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return Err((i, "1 to 9 digits of fractional seconds"));
        }
        let kept = digits.min(6);
        frac = num(t, i, kept)? * 10_i64.pow((6 - kept) as u32);
        i += digits;
    }
    let offset = match t.get(i) {
        Some(b'Z') => {
            i += 1;
            0
        }
        Some(&s @ (b'+' | b'-')) => {
            let sign = if s == b'+' { 1 } else { -1 };
            let h = num(t, i + 1, 2)?;
            expect(t, i + 3, b':', "':' inside the UTC offset")?;
            let m = num(t, i + 4, 2)?;
            i += 6;
            sign * (h * 3600 + m * 60)
        }
        _ => return Err((i, "a UTC offset such as '+02:00' or 'Z'")),
    };
    if t.len() != i {
        return Err((i, "the end of the time after the UTC offset"));
    }
    Ok(to_micros((year, month, day), (hour, minute, second), offset, 0, 11)? + frac)
}

/// `1700000000.123`: seconds since the epoch with up to 6 decimals.
pub(crate) fn parse_msec(t: &[u8]) -> Result<i64, (usize, &'static str)> {
    let int_len = t.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 || int_len > 12 {
        return Err((0, "seconds since 1970 such as '1700000000.123'"));
    }
    let secs = num(t, 0, int_len)?;
    let mut frac = 0;
    let mut i = int_len;
    if t.get(i) == Some(&b'.') {
        i += 1;
        let digits = t[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 6 {
            return Err((i, "1 to 6 decimals"));
        }
        frac = num(t, i, digits)? * 10_i64.pow((6 - digits) as u32);
        i += digits;
    }
    if i != t.len() {
        return Err((i, "only digits and one '.'"));
    }
    if secs > MAX_EPOCH_SECS {
        return Err((0, "a time before the year 10000"));
    }
    Ok(secs * MICROS_PER_SEC + frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
            .timestamp_micros()
    }

    #[test]
    fn local_time_converts_the_offset_to_utc() {
        assert_eq!(
            parse_local(b"10/Oct/2000:13:55:36 -0700").unwrap(),
            utc("2000-10-10T20:55:36Z")
        );
        assert_eq!(
            parse_local(b"01/Jan/2024:00:10:00 +0530").unwrap(),
            utc("2023-12-31T18:40:00Z")
        );
        assert_eq!(
            parse_local(b"29/Feb/2024:23:59:59 +0000").unwrap(),
            utc("2024-02-29T23:59:59Z")
        );
        assert_eq!(parse_local(b"29/Feb/2023:00:00:00 +0000").unwrap_err().0, 0);
        assert_eq!(parse_local(b"10/Okt/2000:13:55:36 -0700").unwrap_err().0, 3);
        assert_eq!(
            parse_local(b"10/Oct/2000:24:00:00 -0700").unwrap_err().0,
            12
        );
        assert_eq!(parse_local(b"10/Oct/2000:13:55:36").unwrap_err().0, 20);
        assert_eq!(
            parse_local(b"10/Oct/2000:13:55:36 -07000").unwrap_err().0,
            26
        );
    }

    #[test]
    fn iso8601_and_msec() {
        assert_eq!(
            parse_iso8601(b"2000-10-10T13:55:36-07:00").unwrap(),
            utc("2000-10-10T20:55:36Z")
        );
        assert_eq!(
            parse_iso8601(b"2000-10-10T13:55:36Z").unwrap(),
            utc("2000-10-10T13:55:36Z")
        );
        assert_eq!(
            parse_iso8601(b"2000-10-10T13:55:36.25+05:30").unwrap(),
            utc("2000-10-10T08:25:36.25Z")
        );
        assert!(parse_iso8601(b"2000-10-10 13:55:36Z").is_err());
        assert_eq!(
            parse_msec(b"1700000000.123").unwrap(),
            1_700_000_000_123_000
        );
        assert_eq!(parse_msec(b"1700000000").unwrap(), 1_700_000_000_000_000);
        assert!(parse_msec(b"1700000000.").is_err());
        assert!(parse_msec(b"17e9").is_err());
        assert!(parse_msec(b"999999999999").is_err());
    }

    #[test]
    fn local_date_uses_the_project_zone_across_dst() {
        let mut clock = Clock::new(chrono_tz::America::Toronto);
        let days = |d: &str| {
            (NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
                - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32
        };
        // 03:30 UTC is 23:30 the previous day in Toronto (EDT, -4) and 22:30 in winter (EST, -5).
        for (text, date) in [
            (&b"2024-07-02T03:30:00Z"[..], "2024-07-01"),
            (b"2024-07-02T04:00:00Z", "2024-07-02"),
            (b"2024-01-02T04:59:59Z", "2024-01-01"),
            (b"2024-01-02T05:00:00Z", "2024-01-02"),
            // 2024-11-03 06:00 UTC: clocks go back in Toronto; 05:30 UTC is 01:30 EDT.
            (b"2024-11-03T05:30:00Z", "2024-11-03"),
            (b"2024-11-03T05:30:00Z", "2024-11-03"),
        ] {
            let (_, got) = clock.parse(TimeKind::Iso8601, text).unwrap();
            assert_eq!(got, days(date), "{}", String::from_utf8_lossy(text));
        }
        let mut kolkata = Clock::new(chrono_tz::Asia::Kolkata);
        let (_, got) = kolkata
            .parse(TimeKind::Local, b"01/Jan/2024:18:29:59 +0000")
            .unwrap();
        assert_eq!(got, days("2024-01-01"));
        let (_, got) = kolkata
            .parse(TimeKind::Local, b"01/Jan/2024:18:30:00 +0000")
            .unwrap();
        assert_eq!(got, days("2024-01-02"));
    }
}

//! Event times: Unix numbers in any unit, RFC 3339, strftime patterns, wall-clock times in
//! the source's time zone.

use super::*;

/// `v` as an `i64` if it is a whole number within range.
pub(super) fn integral_f64(v: f64) -> Option<i64> {
    // 2^63 is exactly representable; every f64 below it in magnitude with no fraction fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v)).then_some(v as i64)
}

/// Unix time in some unit (a number, or a string holding one) as microseconds.
pub(super) fn unix_to_micros(value: &Val<'_>, micros_per_unit: i64) -> Option<i64> {
    let float = |v: f64| {
        let micros = (v * micros_per_unit as f64).round();
        integral_f64(micros)
    };
    match value {
        Val::I64(v) => v.checked_mul(micros_per_unit),
        Val::U64(v) => i64::try_from(*v).ok()?.checked_mul(micros_per_unit),
        Val::F64(v) => float(*v),
        Val::Str(s) => match s.parse::<i64>() {
            Ok(v) => v.checked_mul(micros_per_unit),
            Err(_) => float(s.parse().ok()?),
        },
        _ => None,
    }
}

pub(super) fn parse_rfc3339(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|dt| dt.timestamp_micros())
        .map_err(|e| e.to_string())
}

pub(super) fn parse_strftime(
    items: &[Item<'static>],
    s: &str,
    timezone: Tz,
) -> Result<i64, String> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, items.iter()).map_err(|e| e.to_string())?;
    let utc = if parsed.offset().is_some() {
        parsed.to_datetime().map_err(|e| e.to_string())?.to_utc()
    } else if parsed.timestamp().is_some() {
        parsed
            .to_datetime_with_timezone(&Utc)
            .map_err(|e| e.to_string())?
    } else {
        let naive = parsed
            .to_naive_datetime_with_offset(0)
            .map_err(|e| e.to_string())?;
        localize(timezone, naive).ok_or_else(|| format!("{naive} does not exist in {timezone}"))?
    };
    Ok(utc.timestamp_micros())
}

/// A wall-clock time in `timezone` as a UTC instant. A time repeated when clocks go back is
/// the earlier instant; a time skipped when they go forward is read with the offset in force
/// just before the change (02:30 on a spring-forward night is 03:30 daylight time).
pub(super) fn localize(timezone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match timezone.from_local_datetime(&naive) {
        MappedLocalTime::Single(dt) | MappedLocalTime::Ambiguous(dt, _) => Some(dt.to_utc()),
        MappedLocalTime::None => {
            let before = naive.checked_sub_signed(TimeDelta::days(1))?;
            let offset = timezone.offset_from_utc_datetime(&before).fix();
            Some(naive.checked_sub_offset(offset)?.and_utc())
        }
    }
}

//! Baselines learned from history: what a day's volume should be (trend and weekday
//! seasonality), a host's share of its source's traffic, and the median of a rate.
//!
//! Robust by construction: the value under test and days already flagged never train the
//! baseline; a first fit's outliers are dropped before the final fit; the noise is measured
//! by the median absolute deviation, not the standard deviation; and with too little history
//! there is no verdict, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};

/// A day's expected value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub value: f64,
    /// The noise of the log of the value (robust standard deviation of the fit's residuals,
    /// widened for the uncertainty of the fit itself).
    pub log_sigma: f64,
    pub training_days: usize,
}

/// The days of history the daily baseline looks back over: three weeks, short enough that a
/// log-linear trend holds when growth bends.
pub const DAILY_WINDOW_DAYS: i64 = 21;
/// Fewest clean training days before the daily baseline gives a verdict: two of each
/// weekday.
pub const DAILY_MIN_DAYS: usize = 14;

/// Expected value of `series` on `date`: a least-squares fit of `ln(value)` on a linear trend
/// and the day of the week over the `DAILY_WINDOW_DAYS` before `date` (never `date` itself,
/// never a day in `exclude`, never a zero). Err says why there is no verdict.
pub fn daily_expected(
    series: &BTreeMap<NaiveDate, f64>,
    date: NaiveDate,
    exclude: &BTreeSet<NaiveDate>,
) -> Result<Expected, String> {
    let start = date - chrono::Days::new(DAILY_WINDOW_DAYS as u64);
    let mut points: Vec<(f64, usize, f64)> = series
        .range(start..date)
        .filter(|(d, v)| !exclude.contains(d) && **v > 0.0)
        .map(|(d, v)| {
            let t = (*d - date).num_days() as f64 / 7.0;
            (t, d.weekday().num_days_from_monday() as usize, v.ln())
        })
        .collect();
    if points.len() < DAILY_MIN_DAYS {
        return Err(format!(
            "not enough history: {} clean days before {date}, the baseline needs {DAILY_MIN_DAYS}",
            points.len()
        ));
    }
    let mut weekdays = [0usize; 7];
    for p in &points {
        weekdays[p.1] += 1;
    }
    if weekdays.iter().any(|&n| n < 2) {
        return Err(format!(
            "not enough history: every weekday needs two clean days in the {DAILY_WINDOW_DAYS} before {date}"
        ));
    }
    let mut fit = fit_trend_weekday(&points);
    // one round of outlier rejection: a day far off the first fit does not shape the second
    let (_, sigma) = residual_scale(&points, &fit);
    if sigma > 0.0 {
        let keep: Vec<(f64, usize, f64)> = points
            .iter()
            .copied()
            .filter(|p| (p.2 - predict(&fit, p.0, p.1)).abs() <= 4.0 * sigma)
            .collect();
        if keep.len() >= DAILY_MIN_DAYS && keep.len() < points.len() {
            points = keep;
            fit = fit_trend_weekday(&points);
        }
    }
    let (_, sigma) = residual_scale(&points, &fit);
    let n = points.len() as f64;
    // a prediction is less certain than a fitted point (8 parameters from n days)
    let widen = (1.0 + 8.0 / n).sqrt();
    let weekday = date.weekday().num_days_from_monday() as usize;
    Ok(Expected {
        value: predict(&fit, 0.0, weekday).exp(),
        log_sigma: (sigma * widen).max(0.005),
        training_days: points.len(),
    })
}

/// Days of out-of-sample errors that calibrate the daily baseline's noise, and the fewest.
pub const CALIBRATION_DAYS: u64 = 14;
pub const CALIBRATION_MIN: usize = 7;

/// [`daily_expected`], with its noise measured the honest way: the baseline's own prediction
/// errors on the `CALIBRATION_DAYS` before `date` (each predicted from its own past, flagged
/// days left out). A fit explains its training days better than it predicts the next one,
/// most of all when growth bends; the out-of-sample errors say by how much.
pub fn daily_expected_calibrated(
    series: &BTreeMap<NaiveDate, f64>,
    date: NaiveDate,
    exclude: &BTreeSet<NaiveDate>,
) -> Result<Expected, String> {
    let mut e = daily_expected(series, date, exclude)?;
    let mut errors = Vec::new();
    for k in 1..=CALIBRATION_DAYS {
        let d = date - chrono::Days::new(k);
        if exclude.contains(&d) {
            continue;
        }
        let Some(&actual) = series.get(&d).filter(|v| **v > 0.0) else {
            continue;
        };
        if let Ok(p) = daily_expected(series, d, exclude) {
            errors.push(actual.ln() - p.value.ln());
        }
    }
    if errors.len() < CALIBRATION_MIN {
        return Err(format!(
            "not enough history: the baseline has predicted {} of the {CALIBRATION_DAYS} days before {date}, it needs {CALIBRATION_MIN} to know its own error",
            errors.len()
        ));
    }
    let m = median(&errors).unwrap_or(0.0);
    let dev: Vec<f64> = errors.iter().map(|x| (x - m).abs()).collect();
    let out_of_sample = 1.4826 * median(&dev).unwrap_or(0.0);
    // a baseline that runs high or low lately is off by that much too
    e.log_sigma = e.log_sigma.max((out_of_sample.powi(2) + m.powi(2)).sqrt());
    Ok(e)
}

/// Coefficients: intercept, trend per week, then Tuesday..Sunday against Monday.
type Fit = [f64; 8];

fn features(t: f64, weekday: usize) -> [f64; 8] {
    let mut x = [0.0; 8];
    x[0] = 1.0;
    x[1] = t;
    if weekday > 0 {
        x[1 + weekday] = 1.0;
    }
    x
}

fn predict(fit: &Fit, t: f64, weekday: usize) -> f64 {
    features(t, weekday)
        .iter()
        .zip(fit)
        .map(|(x, b)| x * b)
        .sum()
}

fn fit_trend_weekday(points: &[(f64, usize, f64)]) -> Fit {
    // normal equations (X'X) b = X'y, with a whisker of ridge so a weekday with no day left
    // cannot make them singular
    let mut a = [[0.0f64; 9]; 8];
    for &(t, w, y) in points {
        let x = features(t, w);
        for i in 0..8 {
            for j in 0..8 {
                a[i][j] += x[i] * x[j];
            }
            a[i][8] += x[i] * y;
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += 1e-9;
    }
    solve(a)
}

/// Gaussian elimination with partial pivoting on an augmented 8x9 matrix.
fn solve(mut a: [[f64; 9]; 8]) -> Fit {
    for col in 0..8 {
        let pivot = (col..8)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let p = a[col][col];
        if p.abs() < 1e-15 {
            continue;
        }
        for v in a[col].iter_mut().skip(col) {
            *v /= p;
        }
        let pivot_row = a[col];
        for (row, r) in a.iter_mut().enumerate() {
            let f = r[col];
            if row != col && f != 0.0 {
                for (v, pv) in r.iter_mut().zip(pivot_row).skip(col) {
                    *v -= f * pv;
                }
            }
        }
    }
    let mut b = [0.0; 8];
    for (i, bi) in b.iter_mut().enumerate() {
        *bi = a[i][8];
    }
    b
}

/// Median and robust standard deviation (1.4826 x MAD) of the residuals.
fn residual_scale(points: &[(f64, usize, f64)], fit: &Fit) -> (f64, f64) {
    let residuals: Vec<f64> = points
        .iter()
        .map(|p| p.2 - predict(fit, p.0, p.1))
        .collect();
    let m = median(&residuals).unwrap_or(0.0);
    let dev: Vec<f64> = residuals.iter().map(|r| (r - m).abs()).collect();
    (m, 1.4826 * median(&dev).unwrap_or(0.0))
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// How far below (negative) or above its expected value an observation is, in the baseline's
/// noise; and the relative change.
pub fn deviation(actual: f64, expected: &Expected) -> (f64, f64) {
    let z = (actual.max(1.0).ln() - expected.value.max(1.0).ln()) / expected.log_sigma;
    let change = if expected.value > 0.0 {
        actual / expected.value - 1.0
    } else {
        0.0
    };
    (z, change)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() + chrono::Days::new(n as u64)
    }

    /// Growth of 1% a day, weekends at 70%, and a repeatable wobble of +-2%.
    fn series(days: i64) -> BTreeMap<NaiveDate, f64> {
        (0..days)
            .map(|i| {
                let d = day(i);
                let weekend = if d.weekday().num_days_from_monday() >= 5 {
                    0.7
                } else {
                    1.0
                };
                // a scrambled, repeatable +-2% (multiplicative hashing of the day number)
                let u = (i as u64).wrapping_mul(2_654_435_761) % 1000;
                let wobble = 1.0 + 0.04 * (u as f64 / 1000.0 - 0.5);
                (d, 10_000.0 * 1.01f64.powi(i as i32) * weekend * wobble)
            })
            .collect()
    }

    #[test]
    fn follows_trend_and_weekday() {
        let s = series(70);
        for i in 50..70 {
            let e = daily_expected_calibrated(&s, day(i), &BTreeSet::new()).unwrap();
            let actual = s[&day(i)];
            let (z, change) = deviation(actual, &e);
            // the wobble is +-2%: a three-week fit follows it to within 5%
            assert!(change.abs() < 0.05, "day {i}: {change}");
            assert!(z.abs() < 4.0, "day {i}: z {z}");
            // a 10% loss on the same day stands out
            let (z, change) = deviation(actual * 0.9, &e);
            assert!(change < -0.06 && z < -4.0, "day {i}: z {z} change {change}");
        }
    }

    #[test]
    fn a_flagged_day_does_not_train_and_an_outlier_is_dropped() {
        let mut s = series(70);
        // a dead day in the training window, not flagged: the refit drops it
        s.insert(day(60), s[&day(60)] * 0.3);
        let e = daily_expected(&s, day(65), &BTreeSet::new()).unwrap();
        let (_, change) = deviation(s[&day(65)], &e);
        assert!(change.abs() < 0.04, "{change}");
        let flagged: BTreeSet<NaiveDate> = [day(60)].into();
        let e2 = daily_expected(&s, day(65), &flagged).unwrap();
        assert!(e2.training_days < 21);
        // dropped or left out, the dead day does not shape the baseline
        assert!(
            (e2.value / e.value - 1.0).abs() < 0.01,
            "{} vs {}",
            e2.value,
            e.value
        );
    }

    #[test]
    fn calibration_widens_the_noise_to_what_the_baseline_really_misses() {
        let s = series(70);
        let plain = daily_expected(&s, day(60), &BTreeSet::new()).unwrap();
        let calibrated = daily_expected_calibrated(&s, day(60), &BTreeSet::new()).unwrap();
        assert!(calibrated.log_sigma >= plain.log_sigma);
        assert_eq!(calibrated.value, plain.value);
        // a day 10% low still stands out on this smooth series
        let (z, _) = deviation(s[&day(60)] * 0.85, &calibrated);
        assert!(z < -4.0, "{z}");
        // too little history to calibrate: said
        let err = daily_expected_calibrated(&s, day(16), &BTreeSet::new()).unwrap_err();
        assert!(err.contains("needs 7"), "{err}");
    }

    #[test]
    fn no_verdict_without_history() {
        let s = series(10);
        let err = daily_expected(&s, day(10), &BTreeSet::new()).unwrap_err();
        assert!(err.contains("not enough history"), "{err}");
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}

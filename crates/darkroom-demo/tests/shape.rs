//! The demo company has the shape the issue asks for: funnels that fall step by step, weekends
//! lower than weekdays, and planted leading indicators that show in the outcomes.

// test code: a panic is a failed test
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Datelike, NaiveDate, Weekday};
use darkroom_demo::{DemoOptions, generate};
use serde_json::Value;

fn read(dir: &std::path::Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("truth").join(name)).unwrap()).unwrap()
}

#[test]
fn funnels_fall_weekends_dip_and_indicators_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = DemoOptions::new(tmp.path().join("demo"));
    opts.days = 35;
    opts.users = 3000;
    let summary = generate(&opts).unwrap();
    assert!(
        summary.users > 2000 && summary.users < 4000,
        "{}",
        summary.users
    );
    let dir = &opts.dir;

    let funnels = read(dir, "funnels.json");
    let activation: Vec<u64> = funnels[0]["persons_reaching_step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // visit > signup > came back another day > engaged > subscribed, none empty but the last
    assert!(activation.windows(2).all(|w| w[0] > w[1]), "{activation:?}");
    assert!(activation[3] > 0, "{activation:?}");

    // Weekends are lower: mean visitors on Saturdays and Sundays below weekdays'.
    let daily = read(dir, "daily.json");
    let (mut weekend, mut weekday) = (Vec::new(), Vec::new());
    for d in daily.as_array().unwrap() {
        let date: NaiveDate = d["date"].as_str().unwrap().parse().unwrap();
        let v = d["visitors"].as_f64().unwrap();
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            weekend.push(v);
        } else {
            weekday.push(v);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&weekend) < mean(&weekday), "{weekend:?} {weekday:?}");

    // Members who upload 3+ photos in their first week subscribe more often.
    let summary = read(dir, "summary.json");
    let uploads = &summary["leading_indicators"][0];
    assert_eq!(uploads["name"], "uploads_in_first_week");
    let (with, without) = (
        uploads["with_indicator"]["rate"].as_f64().unwrap(),
        uploads["without_indicator"]["rate"].as_f64().unwrap(),
    );
    assert!(with > 1.5 * without, "{uploads}");
}

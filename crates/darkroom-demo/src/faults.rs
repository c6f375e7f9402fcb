//! Faults the demo can inject (`--fault SPEC`), each recorded with its exact effect in the
//! ground truth.
//!
//! A spec is `KIND:key=value,key=value`; times and dates are in the project's time zone:
//!
//! | spec | what happens |
//! |---|---|
//! | `sender-dies:host=api-2,from=2026-02-10T14:00[,back=2026-02-13]` | the host's log sender stops; with `back`, the lines since `from` arrive late, at the start of that date's files |
//! | `loss:date=2026-02-20,fraction=0.1` | that day loses a fraction of its log lines in transit, on every host |
//! | `garble:date=2026-02-21,fraction=0.02` | parser regression: a fraction of that day's nginx lines are written with an ISO 8601 time |
//! | `duplicate:host=web-1,date=2026-02-22` | that host's files of that date are delivered twice (a second copy, `...-redelivered`) |
//! | `missing-day:date=2026-02-23` | no log file at all for that date |
//! | `clock-skew:host=web-3,hours=5[,from=2026-02-25]` | the host's clock runs that many hours off (negative: behind), for the whole period or from that date on |
//! | `schema-drift:change=rename\|type\|enum` | the production schema drifts: `users.country` renamed `country_code`, `photos.width` turned into text, or a new plan `team` |
//! | `db-unreachable:date=2026-02-24` | the production database cannot be reached during that night's run: `darkroom demo` runs that night on its own with the database down (its extract fails, nothing is published), then the nights after it, so the last one publishes with it degraded |

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    SenderDies {
        host: String,
        /// Local time (project time zone) from which the sender is dead.
        from: NaiveDateTime,
        /// The date whose files carry the late backlog, if the sender comes back.
        back: Option<NaiveDate>,
    },
    Loss {
        date: NaiveDate,
        fraction: f64,
    },
    Garble {
        date: NaiveDate,
        fraction: f64,
    },
    Duplicate {
        host: String,
        date: NaiveDate,
    },
    MissingDay {
        date: NaiveDate,
    },
    ClockSkew {
        host: String,
        hours: i64,
        /// The first date (project time zone) the clock is off; without it, the whole period.
        from: Option<NaiveDate>,
    },
    SchemaDrift {
        change: Drift,
    },
    DbUnreachable {
        date: NaiveDate,
    },
}

/// A change to the production database's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drift {
    /// `users.country` is renamed `country_code`.
    Rename,
    /// `photos.width` becomes TEXT (values like `'4000px'`).
    Type,
    /// Subscriptions gain a plan the extract has never seen: `team`.
    Enum,
}

/// A `--fault` spec that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    pub spec: String,
    pub reason: String,
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // clap names the spec already; used elsewhere, the spec is in `self.spec`
        f.write_str(&self.reason)
    }
}

impl std::error::Error for FaultError {}

const KINDS: &str = "sender-dies, loss, garble, duplicate, missing-day, clock-skew, schema-drift, \
                     db-unreachable";

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| FaultError {
            spec: spec.to_owned(),
            reason,
        };
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut args = BTreeMap::new();
        for pair in rest.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| fail(format!("`{pair}` is not key=value")))?;
            if args.insert(k.trim(), v.trim()).is_some() {
                return Err(fail(format!("`{k}` is given twice")));
            }
        }
        let mut take = |key: &str| -> Result<&str, FaultError> {
            args.remove(key)
                .ok_or_else(|| fail(format!("`{kind}` needs `{key}=...`")))
        };
        let date = |v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| fail(format!("`{v}` is not a date (YYYY-MM-DD)")))
        };
        let fraction = |v: &str| match v.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
            _ => Err(fail(format!(
                "fraction `{v}` must be a number above 0 and at most 1 (0.1 is 10%)"
            ))),
        };
        let fault = match kind {
            "sender-dies" => {
                let host = take("host")?.to_owned();
                let from_text = take("from")?;
                let from =
                    NaiveDateTime::parse_from_str(from_text, "%Y-%m-%dT%H:%M").map_err(|_| {
                        fail(format!(
                            "`from={from_text}` is not a local time like 2026-02-10T14:00"
                        ))
                    })?;
                let back = args.remove("back").map(date).transpose()?;
                if back.is_some_and(|b| b <= from.date()) {
                    return Err(fail("`back` must be a date after `from`".into()));
                }
                Fault::SenderDies { host, from, back }
            }
            "loss" => Fault::Loss {
                date: date(take("date")?)?,
                fraction: fraction(take("fraction")?)?,
            },
            "garble" => Fault::Garble {
                date: date(take("date")?)?,
                fraction: fraction(take("fraction")?)?,
            },
            "duplicate" => Fault::Duplicate {
                host: take("host")?.to_owned(),
                date: date(take("date")?)?,
            },
            "missing-day" => Fault::MissingDay {
                date: date(take("date")?)?,
            },
            "clock-skew" => {
                let text = take("hours")?;
                let hours = match text.parse::<i64>() {
                    Ok(h) if h != 0 && h.abs() <= 23 => h,
                    _ => {
                        return Err(fail(format!(
                            "hours `{text}` must be a whole number from -23 to 23, not 0"
                        )));
                    }
                };
                Fault::ClockSkew {
                    host: take("host")?.to_owned(),
                    hours,
                    from: args.remove("from").map(date).transpose()?,
                }
            }
            "schema-drift" => {
                let change = match take("change")? {
                    "rename" => Drift::Rename,
                    "type" => Drift::Type,
                    "enum" => Drift::Enum,
                    other => {
                        return Err(fail(format!(
                            "unknown change `{other}`; expected rename, type or enum"
                        )));
                    }
                };
                Fault::SchemaDrift { change }
            }
            "db-unreachable" => Fault::DbUnreachable {
                date: date(take("date")?)?,
            },
            other => {
                return Err(fail(format!(
                    "unknown fault `{other}`; expected one of {KINDS}"
                )));
            }
        };
        if let Some(key) = args.keys().next() {
            return Err(fail(format!("`{kind}` has no setting `{key}`")));
        }
        Ok(fault)
    }
}

impl Fault {
    /// The dates the fault names, to check they fall inside the generated period.
    pub(crate) fn dates(&self) -> Vec<NaiveDate> {
        match self {
            Fault::SenderDies { from, back, .. } => {
                std::iter::once(from.date()).chain(*back).collect()
            }
            Fault::Loss { date, .. }
            | Fault::Garble { date, .. }
            | Fault::Duplicate { date, .. }
            | Fault::MissingDay { date }
            | Fault::DbUnreachable { date } => vec![*date],
            Fault::ClockSkew { from, .. } => from.iter().copied().collect(),
            Fault::SchemaDrift { .. } => Vec::new(),
        }
    }

    /// The host the fault names, if any.
    pub(crate) fn host(&self) -> Option<&str> {
        match self {
            Fault::SenderDies { host, .. }
            | Fault::Duplicate { host, .. }
            | Fault::ClockSkew { host, .. } => Some(host),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let f: Fault = "sender-dies:host=api-2,from=2026-02-10T14:00,back=2026-02-13"
            .parse()
            .unwrap();
        assert_eq!(f.host(), Some("api-2"));
        assert_eq!(f.dates().len(), 2);
        assert!(matches!(
            "loss:date=2026-02-20,fraction=0.1".parse::<Fault>(),
            Ok(Fault::Loss { fraction, .. }) if fraction == 0.1
        ));
        assert!("schema-drift:change=enum".parse::<Fault>().is_ok());
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = "los:date=2026-02-20".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("unknown fault `los`"), "{e}");
        let e = "loss:date=2026-02-20".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("needs `fraction=...`"), "{e}");
        let e = "loss:date=2026-02-20,fraction=10"
            .parse::<Fault>()
            .unwrap_err();
        assert!(e.to_string().contains("at most 1"), "{e}");
        let e = "missing-day:date=2026-02-30".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("not a date"), "{e}");
        let e = "missing-day:date=2026-02-03,host=x"
            .parse::<Fault>()
            .unwrap_err();
        assert!(e.to_string().contains("no setting `host`"), "{e}");
        let e = "clock-skew:host=web-1,hours=0"
            .parse::<Fault>()
            .unwrap_err();
        assert!(e.to_string().contains("-23 to 23"), "{e}");
    }
}

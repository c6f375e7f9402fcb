//! When the nightly run and maintenance fire: standard 5-field cron expressions in the
//! project's time zone (croner; daylight-saving changes as Vixie cron handles them: a time
//! skipped by the spring change fires right after the gap, a time repeated by the autumn
//! change fires once).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::{PipelineError, Result};

/// A parsed schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    text: String,
    tz: Tz,
}

impl Schedule {
    pub fn new(text: &str, tz: Tz) -> Result<Self> {
        let cron = darkroom_config::parse_cron(text).map_err(PipelineError::Invalid)?;
        Ok(Self {
            cron,
            text: text.to_string(),
            tz,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first instant strictly after `after` when the schedule fires.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Every firing in `(from, to]`.
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = from;
        while let Some(next) = self.next_after(at) {
            if next > to {
                break;
            }
            out.push(next);
            at = next;
        }
        out
    }

    /// The night a firing at `at` runs: the day before, in the project's time zone.
    pub fn night_of(&self, at: DateTime<Utc>) -> NaiveDate {
        let day = at.with_timezone(&self.tz).date_naive();
        day.pred_opt().unwrap_or(day)
    }
}

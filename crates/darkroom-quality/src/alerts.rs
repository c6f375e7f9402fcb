//! Sending incidents: a Slack-compatible webhook (`{"text": ...}`), a generic JSON webhook
//! (the alert as JSON) and email over SMTP. Each alert is queued in the store first, then each
//! channel is tried up to `[alerts] attempts` times with doubling waits; what still fails is
//! recorded as `failed` with the error and tried again by the next run — never dropped.

use std::time::Duration;

use darkroom_config::{AlertChannel, AlertsConfig};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::store::{Incident, QualityStore};
use crate::{Finding, Result, Severity};

/// What an alert says (stored with the delivery, rendered per channel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertMessage {
    /// `open`, `repeat` or `resolve`.
    pub event: String,
    pub incident: i64,
    pub date: String,
    pub severity: Severity,
    pub title: String,
    /// Events at stake, summed over the findings that give a number.
    pub at_stake: Option<i64>,
    pub findings: Vec<AlertFinding>,
    /// For a repeat: how many repeats were held back since the last alert.
    pub suppressed: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertFinding {
    pub id: String,
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    pub at_stake: Option<i64>,
    pub evidence: serde_json::Value,
}

impl AlertMessage {
    pub fn new(event: &str, incident: &Incident) -> Self {
        Self {
            event: event.into(),
            incident: incident.id,
            date: incident.date.to_string(),
            severity: incident.severity,
            title: incident.title.clone(),
            at_stake: incident.at_stake,
            findings: incident.findings.iter().map(AlertFinding::from).collect(),
            suppressed: incident.suppressed,
        }
    }

    pub fn subject(&self) -> String {
        match self.event.as_str() {
            "resolve" => format!("[darkroom] resolved: {} ({})", self.title, self.date),
            "repeat" => format!(
                "[darkroom] still open, {}: {} ({})",
                self.severity.name(),
                self.title,
                self.date
            ),
            _ => format!(
                "[darkroom] {}: {} ({})",
                self.severity.name(),
                self.title,
                self.date
            ),
        }
    }

    /// Plain text for people (Slack and email).
    pub fn text(&self) -> String {
        let mut out = self.subject();
        out.push('\n');
        if self.event == "resolve" {
            out.push_str(&format!(
                "Every check of {} passes again (incident #{}).\n",
                self.date, self.incident
            ));
            return out;
        }
        if let Some(n) = self.at_stake {
            out.push_str(&format!("Events at stake: about {n}\n"));
        }
        for f in &self.findings {
            out.push_str(&format!("- [{}] {}\n", f.severity.name(), f.message));
        }
        out.push_str(&format!(
            "Details: darkroom health --date {} (incident #{})\n",
            self.date, self.incident
        ));
        out
    }
}

impl From<&Finding> for AlertFinding {
    fn from(f: &Finding) -> Self {
        Self {
            id: f.id.clone(),
            kind: f.kind.clone(),
            severity: f.severity,
            message: f.message.clone(),
            at_stake: f.at_stake,
            evidence: f.evidence.clone(),
        }
    }
}

/// The result of sending what was queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendReport {
    pub sent: usize,
    pub failed: usize,
    pub errors: Vec<String>,
}

/// Queue one alert for every channel.
pub fn queue(
    store: &QualityStore,
    config: &AlertsConfig,
    message: &AlertMessage,
    now_ms: i64,
) -> Result<()> {
    let min = crate::Severity::parse(config.min_severity.get_ref()).unwrap_or(Severity::Info);
    if message.severity < min && message.event != "resolve" {
        return Ok(());
    }
    let payload = serde_json::to_string(message).unwrap_or_default();
    for (i, c) in config.channels.iter().enumerate() {
        store.queue_delivery(
            message.incident,
            &message.event,
            &c.get_ref().label(i),
            &payload,
            now_ms,
        )?;
    }
    Ok(())
}

/// Send every delivery not yet sent (this run's and earlier runs' failures).
pub async fn send_pending(store: &QualityStore, config: &AlertsConfig) -> Result<SendReport> {
    let mut report = SendReport::default();
    let channels: Vec<(String, &AlertChannel)> = config
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| (c.get_ref().label(i), c.get_ref()))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| crate::QualityError::Other(format!("cannot build an HTTP client: {e}")))?;
    for d in store.unsent()? {
        let Some((_, channel)) = channels.iter().find(|(label, _)| *label == d.channel) else {
            let msg = format!("channel `{}` is no longer configured", d.channel);
            store.record_attempt(d.id, "failed", Some(&msg), now_ms())?;
            report.failed += 1;
            report.errors.push(msg);
            continue;
        };
        let Ok(message) = serde_json::from_str::<AlertMessage>(&d.payload) else {
            continue;
        };
        let mut wait = Duration::from_secs_f64(config.retry_seconds.max(0.0));
        let mut last_error = String::new();
        let mut sent = false;
        let attempts = config.attempts.max(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            match send_one(&client, channel, &message).await {
                Ok(()) => {
                    store.record_attempt(d.id, "sent", None, now_ms())?;
                    sent = true;
                    break;
                }
                Err(e) => {
                    last_error = e;
                    // the last attempt of this run leaves it failed: the next run tries again
                    let status = if attempt + 1 == attempts {
                        "failed"
                    } else {
                        "pending"
                    };
                    store.record_attempt(d.id, status, Some(&last_error), now_ms())?;
                }
            }
        }
        if sent {
            report.sent += 1;
        } else {
            tracing::warn!(channel = %d.channel, error = %last_error, "alert not delivered; the next run tries again");
            report.failed += 1;
            report.errors.push(format!("{}: {last_error}", d.channel));
        }
    }
    Ok(report)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn send_one(
    client: &reqwest::Client,
    channel: &AlertChannel,
    message: &AlertMessage,
) -> Result<(), String> {
    match channel.kind.get_ref().as_str() {
        "slack" | "webhook" => {
            let url = channel
                .url
                .as_ref()
                .map(|u| u.get_ref().clone())
                .ok_or("no url")?;
            let body = if channel.kind.get_ref() == "slack" {
                serde_json::json!({"text": message.text()})
            } else {
                serde_json::to_value(message).unwrap_or_default()
            };
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| format!("POST {}: {e}", redact(&url)))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("POST {}: HTTP {}", redact(&url), response.status()))
            }
        }
        "email" => send_email(channel, message).await,
        other => Err(format!("unknown channel kind `{other}`")),
    }
}

/// A webhook URL carries its secret in the path: show only its host.
fn redact(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")))
        .unwrap_or_else(|| "the webhook".into())
}

async fn send_email(channel: &AlertChannel, message: &AlertMessage) -> Result<(), String> {
    let smtp = channel
        .smtp
        .as_ref()
        .map(|s| s.get_ref().clone())
        .ok_or("no smtp server")?;
    let server = darkroom_config::smtp_server(&smtp)?;
    let from = channel.from.clone().unwrap_or_default();
    let mut builder = Message::builder()
        .from(from.parse().map_err(|e| format!("from `{from}`: {e}"))?)
        .subject(message.subject())
        .header(ContentType::TEXT_PLAIN);
    for to in &channel.to {
        builder = builder.to(to.parse().map_err(|e| format!("to `{to}`: {e}"))?);
    }
    let email = builder
        .body(message.text())
        .map_err(|e| format!("cannot build the email: {e}"))?;
    let transport = match server.security {
        "plain" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&server.host)
            .map_err(|e| format!("{smtp}: {e}"))?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::relay(&server.host)
            .map_err(|e| format!("{smtp}: {e}"))?,
    };
    let mut transport = transport
        .port(server.port)
        .timeout(Some(Duration::from_secs(20)));
    if let (Some(user), Some(pass)) = (&channel.username, &channel.password) {
        transport = transport.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    transport
        .build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| format!("{}:{}: {e}", server.host, server.port))
}

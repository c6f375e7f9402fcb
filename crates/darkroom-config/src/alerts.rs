//! `[alerts]`: where incidents are sent (Slack-compatible webhooks, generic JSON webhooks,
//! email over SMTP), how often an open incident is repeated, and how delivery is retried.
//! Secrets (webhook URLs, SMTP passwords) belong in the environment: `"${SLACK_WEBHOOK}"`.

use serde::Deserialize;
use toml::Spanned;

use crate::{Diagnostics, SourceFile};

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// An incident still open is sent again no sooner than this many hours after its last
    /// alert (repeats in between are suppressed and counted).
    #[serde(default = "default_repeat_hours")]
    pub repeat_hours: f64,
    /// Delivery attempts per alert and channel before the failure is recorded (an alert
    /// whose delivery failed is tried again by the next run, never dropped).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Seconds between attempts (doubling each time).
    #[serde(default = "default_retry_seconds")]
    pub retry_seconds: f64,
    /// The lowest severity that is sent: `info` (notices too), `warn` or `error`.
    #[serde(default = "default_min_severity")]
    pub min_severity: Spanned<String>,
    #[serde(default)]
    pub channels: Vec<Spanned<AlertChannel>>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            repeat_hours: default_repeat_hours(),
            attempts: default_attempts(),
            retry_seconds: default_retry_seconds(),
            min_severity: default_min_severity(),
            channels: Vec::new(),
        }
    }
}

/// One `[[alerts.channels]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertChannel {
    /// A name for the channel in reports (defaults to its kind and position).
    #[serde(default)]
    pub name: Option<String>,
    /// `slack` (a Slack-compatible incoming webhook: `{"text": ...}`), `webhook` (the
    /// incident as JSON) or `email` (SMTP).
    pub kind: Spanned<String>,
    /// The webhook's URL (slack, webhook).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// The mail server (email): `smtp://host:port` (plain, for a relay on the same network),
    /// `smtp+starttls://host:587` or `smtps://host:465`.
    #[serde(default)]
    pub smtp: Option<Spanned<String>>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
}

impl AlertChannel {
    /// The channel's name in reports.
    pub fn label(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.kind.get_ref(), index + 1))
    }
}

fn default_repeat_hours() -> f64 {
    24.0
}
fn default_attempts() -> u32 {
    3
}
fn default_retry_seconds() -> f64 {
    2.0
}
fn default_min_severity() -> Spanned<String> {
    Spanned::new(0..0, "info".to_string())
}

pub(crate) fn validate(file: &SourceFile, alerts: &AlertsConfig, diags: &mut Diagnostics) {
    if !(alerts.repeat_hours.is_finite() && alerts.repeat_hours >= 0.0) {
        diags.push(file.error(0..0, "[alerts] repeat_hours must be 0 or more"));
    }
    if alerts.attempts == 0 {
        diags.push(file.error(0..0, "[alerts] attempts must be at least 1"));
    }
    if !(alerts.retry_seconds.is_finite() && alerts.retry_seconds >= 0.0) {
        diags.push(file.error(0..0, "[alerts] retry_seconds must be 0 or more"));
    }
    if !["info", "warn", "error"].contains(&alerts.min_severity.get_ref().as_str()) {
        diags.push(file.error(
            alerts.min_severity.span(),
            format!(
                "unknown severity `{}`: use info, warn or error",
                alerts.min_severity.get_ref()
            ),
        ));
    }
    for channel in &alerts.channels {
        let (span, c) = (channel.span(), channel.get_ref());
        match c.kind.get_ref().as_str() {
            "slack" | "webhook" => match &c.url {
                None => diags.push(file.error(
                    span,
                    format!("a `{}` channel needs `url = \"...\"`", c.kind.get_ref()),
                )),
                Some(url) => {
                    let ok = url::Url::parse(url.get_ref())
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                    if !ok {
                        diags.push(file.error(
                            url.span(),
                            format!("`{}` is not an http(s) URL", url.get_ref()),
                        ));
                    }
                }
            },
            "email" => {
                match &c.smtp {
                    None => diags.push(file.error(
                        span.clone(),
                        "an `email` channel needs `smtp = \"smtp+starttls://host:587\"`",
                    )),
                    Some(smtp) => {
                        if let Err(e) = smtp_server(smtp.get_ref()) {
                            diags.push(file.error(smtp.span(), e));
                        }
                    }
                }
                if c.from.is_none() {
                    diags.push(file.error(span.clone(), "an `email` channel needs `from`"));
                }
                if c.to.is_empty() {
                    diags.push(file.error(span, "an `email` channel needs `to = [\"...\"]`"));
                }
            }
            other => diags.push(file.error(
                c.kind.span(),
                format!("unknown alert channel kind `{other}`: use slack, webhook or email"),
            )),
        }
    }
}

/// How to reach a mail server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    /// `plain`, `starttls` or `tls`.
    pub security: &'static str,
}

/// Parse `smtp://host:port`, `smtp+starttls://host:port` or `smtps://host:port`.
pub fn smtp_server(text: &str) -> Result<SmtpServer, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let (security, default_port) = match url.scheme() {
        "smtp" => ("plain", 25),
        "smtp+starttls" => ("starttls", 587),
        "smtps" => ("tls", 465),
        other => {
            return Err(format!(
                "unknown mail scheme `{other}` in `{text}`: use smtp://, smtp+starttls:// or smtps://"
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{text}` names no mail server"))?;
    Ok(SmtpServer {
        host: host.to_string(),
        port: url.port().unwrap_or(default_port),
        security,
    })
}

//! Incidents and their alerts, delivered to real local servers: a webhook that fails before it
//! succeeds, one that is down, a Slack-compatible one and an SMTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use darkroom_config::Project;
use darkroom_quality::{Finding, Gate, Outcome, Severity};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An HTTP server answering each request with the next status of `statuses` (the last one
/// repeats), keeping the bodies.
async fn http_server(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&bodies);
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body).await;
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = write.write_all(reply.as_bytes()).await;
        }
    });
    (url, bodies)
}

/// A minimal SMTP server (plain, no auth) keeping each message's DATA.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&mails);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            let _ = write.write_all(b"220 localhost ESMTP test\r\n").await;
            let mut data: Option<String> = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                if let Some(d) = data.as_mut() {
                    if line == ".\r\n" {
                        sink.lock().unwrap().push(data.take().unwrap_or_default());
                        let _ = write.write_all(b"250 OK queued\r\n").await;
                    } else {
                        d.push_str(&line);
                    }
                    continue;
                }
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    b"250-localhost\r\n250 8BITMIME\r\n"
                } else if upper.starts_with("DATA") {
                    data = Some(String::new());
                    b"354 go ahead\r\n"
                } else if upper.starts_with("QUIT") {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    break;
                } else {
                    b"250 OK\r\n"
                };
                let _ = write.write_all(reply).await;
            }
        }
    });
    (port, mails)
}

fn project(dir: &std::path::Path, channels: &str) -> Project {
    let text = format!(
        "[project]\nname = \"t\"\ntimezone = \"UTC\"\n\n[alerts]\nretry_seconds = 0\nattempts = 3\nrepeat_hours = 24\n{channels}"
    );
    Project::from_str_with_env(dir, &text, &|_| None).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 2, 26).unwrap()
}

fn failing(id: &str, severity: Severity) -> Finding {
    Finding {
        id: id.into(),
        kind: "volume_host".into(),
        subject: "api/api-2".into(),
        date: day(),
        outcome: Outcome::Fail,
        severity,
        message: format!("{id}: api/api-2 sent 0 lines where 900 were expected"),
        evidence: json!({"expected": 900, "actual": 0}),
        at_stake: Some(900),
        tables: vec!["raw_api".into()],
    }
}

#[tokio::test]
async fn one_alert_per_incident_retried_suppressed_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    // fails twice, then takes it
    let (url, bodies) = http_server(vec![500, 502, 200]).await;
    let (slack, slack_bodies) = http_server(vec![200]).await;
    let (smtp_port, mails) = smtp_server().await;
    let channels = format!(
        "[[alerts.channels]]\nkind = \"webhook\"\nurl = \"{url}\"\n\n\
         [[alerts.channels]]\nkind = \"slack\"\nurl = \"{slack}\"\n\n\
         [[alerts.channels]]\nkind = \"email\"\nsmtp = \"smtp://127.0.0.1:{smtp_port}\"\n\
         from = \"darkroom@example.com\"\nto = [\"data@example.com\"]\n"
    );
    let gate = Gate::open(&project(dir.path(), &channels)).unwrap();
    // two failing checks of one date: one incident, one alert per channel
    gate.store
        .replace_findings(
            day(),
            &[failing("a", Severity::Warn), failing("b", Severity::Warn)],
            None,
            0,
        )
        .unwrap();
    let report = gate.sync(&[day()].into()).await.unwrap();
    assert_eq!((report.sent, report.failed), (3, 0), "{report:?}");
    let deliveries = gate.store.all_deliveries().unwrap();
    let webhook = deliveries
        .iter()
        .find(|d| d.channel == "webhook-1")
        .unwrap();
    assert_eq!(webhook.attempts, 3, "two failures, then delivered");
    assert_eq!(webhook.status, "sent");
    let body: serde_json::Value =
        serde_json::from_str(bodies.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!(body["event"], "open");
    assert_eq!(body["date"], "2026-02-26");
    assert_eq!(body["findings"].as_array().unwrap().len(), 2);
    assert_eq!(body["at_stake"], 900);
    let slack_body: serde_json::Value =
        serde_json::from_str(&slack_bodies.lock().unwrap()[0]).unwrap();
    assert!(slack_body["text"].as_str().unwrap().contains("api/api-2"));
    let mail = mails.lock().unwrap()[0].clone();
    assert!(mail.contains("Subject: [darkroom] warn:"), "{mail}");
    assert!(mail.contains("Events at stake: about 900"), "{mail}");

    // the same incident again within repeat_hours: suppressed and counted, nothing sent
    let report = gate.sync(&[day()].into()).await.unwrap();
    assert_eq!(report.sent, 0);
    let incident = gate.store.open_incidents().unwrap().remove(0);
    assert_eq!(incident.suppressed, 1);
    // worse (an error now): sent at once
    gate.store
        .replace_findings(day(), &[failing("a", Severity::Error)], None, 0)
        .unwrap();
    let report = gate.sync(&[day()].into()).await.unwrap();
    assert_eq!(report.sent, 3);
    // every check passes again: one follow-up, and the incident is closed
    let mut ok = failing("a", Severity::Error);
    ok.outcome = Outcome::Pass;
    gate.store.replace_findings(day(), &[ok], None, 0).unwrap();
    let report = gate.sync(&[day()].into()).await.unwrap();
    assert_eq!(report.sent, 3);
    assert!(gate.store.open_incidents().unwrap().is_empty());
    let body: serde_json::Value =
        serde_json::from_str(bodies.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!(body["event"], "resolve");
}

#[tokio::test]
async fn an_alert_that_cannot_be_delivered_is_recorded_and_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let channels = format!(
        "[[alerts.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/x\"\n"
    );
    let gate = Gate::open(&project(dir.path(), &channels)).unwrap();
    gate.store
        .replace_findings(day(), &[failing("a", Severity::Error)], None, 0)
        .unwrap();
    let report = gate.sync(&[day()].into()).await.unwrap();
    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(report.errors[0].contains("ops"), "{:?}", report.errors);
    let d = gate.store.all_deliveries().unwrap().remove(0);
    assert_eq!((d.status.as_str(), d.attempts), ("failed", 3));
    assert!(d.error.unwrap().contains("127.0.0.1"));
    // the next run tries it again; once the receiver is up, it goes out
    let (url, bodies) = http_server(vec![200]).await;
    let channels =
        format!("[[alerts.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\n");
    let gate = Gate::open(&project(dir.path(), &channels)).unwrap();
    let report =
        darkroom_quality::alerts::send_pending(&gate.store, &gate_alerts(&channels, dir.path()))
            .await
            .unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(bodies.lock().unwrap().len(), 1);
    assert_eq!(gate.store.unsent().unwrap().len(), 0);
}

fn gate_alerts(channels: &str, dir: &std::path::Path) -> darkroom_config::AlertsConfig {
    project(dir, channels).alerts
}

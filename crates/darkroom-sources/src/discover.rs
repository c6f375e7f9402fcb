//! Finding a source's files for one date: a path template with `{date}` and `{host}` and glob
//! wildcards, on local disk or S3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::{Result, SourceError};

/// Where a found file lives.
#[derive(Clone)]
pub enum FileLocation {
    /// A local file; `name` is its path relative to the project when it is inside it.
    Local { path: PathBuf, name: String },
    Remote {
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        /// `s3://bucket/key`, for messages and lineage.
        url: String,
    },
}

impl std::fmt::Debug for FileLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl FileLocation {
    /// The path as recorded in lineage columns and the ledger.
    pub fn display(&self) -> String {
        match self {
            Self::Local { name, .. } => name.clone(),
            Self::Remote { url, .. } => url.clone(),
        }
    }
}

/// One file that belongs to a (source, date).
#[derive(Debug, Clone)]
pub struct FoundFile {
    pub host: String,
    pub location: FileLocation,
    pub size: u64,
    /// Last modified, in seconds since the epoch (when the store says).
    pub modified: Option<i64>,
}

/// A path template, split into what is fixed and what is matched.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    template: String,
    date_format: String,
}

impl PathTemplate {
    pub fn new(template: &str, date_format: &str) -> Self {
        Self {
            template: template.to_string(),
            date_format: date_format.to_string(),
        }
    }

    fn date_text(&self, date: NaiveDate) -> String {
        date.format(&self.date_format).to_string()
    }

    /// The template with the date (and host, if given) filled in; other hosts as `*`.
    pub fn fill(&self, date: NaiveDate, host: Option<&str>) -> String {
        let date = glob::Pattern::escape(&self.date_text(date));
        let host = host.map_or_else(|| "*".to_string(), glob::Pattern::escape);
        self.template
            .replace("{date}", &date)
            .replace("{host}", &host)
    }

    /// The template with any date and any host (`*` for both).
    fn fill_any(&self) -> String {
        let mut any = self.template.replace("{date}", "*").replace("{host}", "*");
        while any.contains("**") {
            any = any.replace("**", "*");
        }
        any
    }

    /// Pull the host out of a matched path (`/`-separated), or `default` without `{host}`.
    pub fn host_of(&self, date: NaiveDate, path: &str) -> Option<String> {
        if !self.template.contains("{host}") {
            return Some("default".to_string());
        }
        let date = self.date_text(date);
        let t_segments: Vec<&str> = self.template.split('/').collect();
        let p_segments: Vec<&str> = path.split('/').collect();
        let idx = t_segments.iter().position(|s| s.contains("{host}"))?;
        // Align from the end: templates may be relative while paths are absolute.
        let from_end = t_segments.len() - idx;
        let segment = *p_segments.get(p_segments.len().checked_sub(from_end)?)?;
        let t = t_segments[idx].replace("{date}", &date);
        let (prefix, suffix) = t.split_once("{host}")?;
        let rest = segment.strip_prefix(literal_prefix(prefix))?;
        let suffix_literal = literal_prefix(suffix);
        let host = if suffix_literal.is_empty() {
            if suffix.is_empty() { rest } else { return None }
        } else {
            &rest[..rest.find(suffix_literal)?]
        };
        (!host.is_empty()).then(|| host.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }
}

fn literal_prefix(s: &str) -> &str {
    let end = s.find(['*', '?', '[']).unwrap_or(s.len());
    &s[..end]
}

/// Find the files of many dates under a local root with one walk of the folders (the same
/// files, in the same order, as [`find_local`] finds for each date).
pub fn find_local_dates(
    template: &PathTemplate,
    root: &Path,
    dates: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, Vec<FoundFile>>> {
    let absolute = |filled: String| {
        if Path::new(&filled).is_absolute() {
            filled
        } else {
            format!(
                "{}/{}",
                glob::Pattern::escape(&root.display().to_string()),
                filled
            )
        }
    };
    let bad = |e: glob::PatternError| SourceError::Template {
        template: template.as_str().to_string(),
        message: e.to_string(),
    };
    let per_date: Vec<(NaiveDate, String, glob::Pattern)> = dates
        .iter()
        .map(|d| {
            let pattern = glob::Pattern::new(&absolute(template.fill(*d, None))).map_err(bad)?;
            Ok((*d, template.date_text(*d), pattern))
        })
        .collect::<Result<_>>()?;
    let mut out: BTreeMap<NaiveDate, Vec<FoundFile>> =
        dates.iter().map(|d| (*d, Vec::new())).collect();
    let entries = glob::glob(&absolute(template.fill_any())).map_err(bad)?;
    for entry in entries {
        let path = entry.map_err(|e| SourceError::Io {
            path: e.path().display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let text = path.display().to_string();
        let mut meta = None;
        for (date, date_text, pattern) in &per_date {
            if !text.contains(date_text.as_str()) || !pattern.matches_path(&path) {
                continue;
            }
            let m = match &meta {
                Some(m) => m,
                None => meta.insert(std::fs::metadata(&path).map_err(|e| SourceError::Io {
                    path: text.clone(),
                    source: e,
                })?),
            };
            if !m.is_file() {
                break;
            }
            let Some(host) = template.host_of(*date, &text) else {
                continue;
            };
            out.entry(*date)
                .or_default()
                .push(found_file(host, &path, root, m));
        }
    }
    for files in out.values_mut() {
        files.sort_by(|a, b| (&a.host, a.location.display()).cmp(&(&b.host, b.location.display())));
    }
    Ok(out)
}

fn found_file(host: String, path: &Path, root: &Path, meta: &std::fs::Metadata) -> FoundFile {
    let name = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    FoundFile {
        host,
        location: FileLocation::Local {
            path: path.to_path_buf(),
            name,
        },
        size: meta.len(),
        modified: meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok()),
    }
}

/// Find the files of one date under a local root (relative templates are relative to it).
pub fn find_local(template: &PathTemplate, root: &Path, date: NaiveDate) -> Result<Vec<FoundFile>> {
    let filled = template.fill(date, None);
    let pattern = if Path::new(&filled).is_absolute() {
        filled
    } else {
        format!(
            "{}/{}",
            glob::Pattern::escape(&root.display().to_string()),
            filled
        )
    };
    let entries = glob::glob(&pattern).map_err(|e| SourceError::Template {
        template: template.as_str().to_string(),
        message: e.to_string(),
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| SourceError::Io {
            path: e.path().display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let meta = std::fs::metadata(&path).map_err(|e| SourceError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        if !meta.is_file() {
            continue;
        }
        let text = path.display().to_string();
        let Some(host) = template.host_of(date, &text) else {
            continue;
        };
        found.push(found_file(host, &path, root, &meta));
    }
    found.sort_by(|a, b| (&a.host, a.location.display()).cmp(&(&b.host, b.location.display())));
    Ok(found)
}

/// Find the files of one date in an object store. `template` is `s3://bucket/...`.
pub async fn find_remote(
    template: &PathTemplate,
    store: Arc<dyn ObjectStore>,
    bucket_url: &str,
    key_template: &str,
    date: NaiveDate,
) -> Result<Vec<FoundFile>> {
    let key_template = PathTemplate::new(key_template, &template.date_format);
    let filled = key_template.fill(date, None);
    let pattern = glob::Pattern::new(&filled).map_err(|e| SourceError::Template {
        template: template.as_str().to_string(),
        message: e.to_string(),
    })?;
    // List under the longest fixed folder prefix.
    let fixed = literal_prefix(&filled);
    let prefix = fixed.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let prefix_path = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    let objects: Vec<_> = store
        .list(prefix_path.as_ref())
        .try_collect()
        .await
        .map_err(|e| SourceError::Remote {
            location: format!("{bucket_url}/{prefix}"),
            source: e,
        })?;
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let mut found = Vec::new();
    for meta in objects {
        let key = meta.location.to_string();
        if !pattern.matches_with(&key, options) {
            continue;
        }
        let Some(host) = key_template.host_of(date, &key) else {
            continue;
        };
        found.push(FoundFile {
            host,
            location: FileLocation::Remote {
                store: Arc::clone(&store),
                url: format!("{bucket_url}/{key}"),
                path: meta.location,
            },
            size: meta.size,
            modified: Some(meta.last_modified.timestamp()),
        });
    }
    found.sort_by(|a, b| (&a.host, a.location.display()).cmp(&(&b.host, b.location.display())));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn host_from_path() {
        let t = PathTemplate::new("logs/web/{host}/access-{date}.log*", "%Y-%m-%d");
        let date = d("2026-01-02");
        assert_eq!(
            t.host_of(date, "/p/logs/web/web-1/access-2026-01-02.log.gz")
                .as_deref(),
            Some("web-1")
        );
        let t = PathTemplate::new("logs/{date}/{host}.access.log*", "%Y%m%d");
        assert_eq!(
            t.host_of(date, "/p/logs/20260102/api-3.access.log.gz")
                .as_deref(),
            Some("api-3")
        );
        let t = PathTemplate::new("logs/{date}.log", "%Y-%m-%d");
        assert_eq!(
            t.host_of(date, "logs/2026-01-02.log").as_deref(),
            Some("default")
        );
    }

    #[test]
    fn fill_escapes_and_wildcards_hosts() {
        let t = PathTemplate::new("l/{host}/a-{date}.log", "%Y-%m-%d");
        assert_eq!(t.fill(d("2026-01-02"), None), "l/*/a-2026-01-02.log");
        assert_eq!(t.fill(d("2026-01-02"), Some("w1")), "l/w1/a-2026-01-02.log");
    }

    #[test]
    fn finds_local_files() {
        let dir = tempfile::tempdir().unwrap();
        for host in ["web-1", "web-2"] {
            std::fs::create_dir_all(dir.path().join("logs").join(host)).unwrap();
            std::fs::write(
                dir.path().join(format!("logs/{host}/a-2026-01-02.log")),
                "x\n",
            )
            .unwrap();
            std::fs::write(
                dir.path().join(format!("logs/{host}/a-2026-01-03.log")),
                "x\n",
            )
            .unwrap();
        }
        let t = PathTemplate::new("logs/{host}/a-{date}.log*", "%Y-%m-%d");
        let found = find_local(&t, dir.path(), d("2026-01-02")).unwrap();
        let hosts: Vec<_> = found.iter().map(|f| f.host.as_str()).collect();
        assert_eq!(hosts, ["web-1", "web-2"]);
        assert_eq!(found[0].size, 2);
    }
}

//! Where the warehouse lives: a local folder or `s3://bucket/prefix`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::{Result, StorageError};

/// A warehouse root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute local folder.
    Local(PathBuf),
    /// An object-store URL (`s3://bucket/prefix`), without a trailing slash.
    Remote(Url),
}

impl Location {
    /// Parse a configured location. Relative folders are taken relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let invalid = |reason: &str| StorageError::InvalidLocation {
            location: text.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("file://") {
            return Ok(Self::Local(PathBuf::from(rest)));
        }
        if text.starts_with("s3://") || text.starts_with("s3a://") {
            let url =
                Url::parse(text.trim_end_matches('/')).map_err(|e| invalid(&e.to_string()))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid("an S3 location needs a bucket: s3://bucket/prefix"));
            }
            return Ok(Self::Remote(url));
        }
        if text.contains("://") {
            return Err(invalid("only local folders and s3:// are supported"));
        }
        let path = Path::new(text);
        Ok(Self::Local(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }))
    }

    /// The root as a URL with a trailing slash.
    pub fn root_url(&self) -> Result<Url> {
        match self {
            Self::Local(path) => {
                let abs = std::path::absolute(path).map_err(|e| StorageError::Io {
                    path: path.display().to_string(),
                    source: e,
                })?;
                Url::from_directory_path(&abs).map_err(|()| StorageError::InvalidLocation {
                    location: path.display().to_string(),
                    reason: "not an absolute path".into(),
                })
            }
            Self::Remote(url) => Url::parse(&format!("{}/", url.as_str().trim_end_matches('/')))
                .map_err(|e| StorageError::InvalidLocation {
                    location: url.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// The URL of a child folder (a table).
    pub fn child_url(&self, name: &str) -> Result<Url> {
        let root = self.root_url()?;
        root.join(&format!("{name}/"))
            .map_err(|e| StorageError::InvalidLocation {
                location: format!("{root}{name}"),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::Remote(u) => write!(f, "{u}"),
        }
    }
}

/// A location plus the object-store options (endpoint, region, credentials) to reach it.
#[derive(Clone)]
pub struct StorageSettings {
    pub location: Location,
    pub options: HashMap<String, String>,
}

impl fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageSettings")
            .field("location", &self.location)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StorageSettings {
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self {
            location: Location::Local(path.into()),
            options: HashMap::new(),
        }
    }

    /// S3 options from explicit values, each falling back to the standard `AWS_*` variable.
    /// Conditional writes are used for the Delta log (never the unsafe-rename mode).
    pub fn s3_options(
        endpoint: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        allow_http: Option<bool>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> HashMap<String, String> {
        let mut o = HashMap::new();
        let mut put = |key: &str, value: Option<String>, var: &str| {
            if let Some(v) = value.or_else(|| env(var)).filter(|v| !v.is_empty()) {
                o.insert(key.to_string(), v);
            }
        };
        put("AWS_ENDPOINT_URL", endpoint, "AWS_ENDPOINT_URL");
        put("AWS_REGION", region, "AWS_REGION");
        put("AWS_ACCESS_KEY_ID", access_key_id, "AWS_ACCESS_KEY_ID");
        put(
            "AWS_SECRET_ACCESS_KEY",
            secret_access_key,
            "AWS_SECRET_ACCESS_KEY",
        );
        put("AWS_SESSION_TOKEN", None, "AWS_SESSION_TOKEN");
        put(
            "AWS_ALLOW_HTTP",
            allow_http.map(|b| b.to_string()),
            "AWS_ALLOW_HTTP",
        );
        o.entry("AWS_REGION".into())
            .or_insert_with(|| "us-east-1".into());
        // Path-style requests work with every S3-compatible server; virtual-host style needs DNS.
        if o.contains_key("AWS_ENDPOINT_URL") {
            o.entry("AWS_VIRTUAL_HOSTED_STYLE_REQUEST".into())
                .or_insert_with(|| "false".into());
        }
        o.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "false".into());
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let base = Path::new("/proj");
        assert_eq!(
            Location::parse("warehouse", base).unwrap(),
            Location::Local("/proj/warehouse".into())
        );
        assert_eq!(
            Location::parse("/abs/w", base).unwrap(),
            Location::Local("/abs/w".into())
        );
        let s3 = Location::parse("s3://bucket/a/b/", base).unwrap();
        assert_eq!(
            s3.child_url("raw_web").unwrap().as_str(),
            "s3://bucket/a/b/raw_web/"
        );
        assert!(Location::parse("s3:///nobucket", base).is_err());
        assert!(Location::parse("gs://x/y", base).is_err());
        let local = Location::Local("/w".into());
        assert_eq!(local.child_url("t").unwrap().as_str(), "file:///w/t/");
    }

    #[test]
    fn s3_options_prefer_config_then_env() {
        let env = |k: &str| match k {
            "AWS_REGION" => Some("eu-west-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("env-key".to_string()),
            _ => None,
        };
        let o = StorageSettings::s3_options(
            Some("http://127.0.0.1:9".into()),
            None,
            Some("cfg-key".into()),
            None,
            Some(true),
            &env,
        );
        assert_eq!(o["AWS_REGION"], "eu-west-1");
        assert_eq!(o["AWS_ACCESS_KEY_ID"], "cfg-key");
        assert_eq!(o["AWS_ALLOW_HTTP"], "true");
        assert_eq!(o["AWS_S3_ALLOW_UNSAFE_RENAME"], "false");
    }
}

//! Object stores for `s3://` log paths.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

use crate::{Result, SourceError};

/// An S3 store for `bucket`, configured from `options` (the same keys as the warehouse:
/// `AWS_ENDPOINT_URL`, `AWS_REGION`, credentials, `AWS_ALLOW_HTTP`). Keys object_store does
/// not know (Delta-specific ones) are skipped.
pub fn s3_store(bucket: &str, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
    for (key, value) in options {
        if let Ok(k) = AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase()) {
            builder = builder.with_config(k, value);
        }
    }
    let store = builder.build().map_err(|e| SourceError::Remote {
        location: format!("s3://{bucket}"),
        source: e,
    })?;
    Ok(Arc::new(store))
}

//! S3, as the daemon uses it: HEAD and stream a source to the scratch disk, PUT variants
//! (immutable: content type, a year of caching, the variant marker), remove variants by
//! key, list sources a page at a time for reconcile, and check that the buckets answer.
//!
//! SDK errors are mapped here into [`S3Error`]; nothing above sees an SDK type.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::aws::{FailureKind, SdkFailure, classify};

/// User metadata on every variant (`x-amz-meta-variant-by`): the marker that the object
/// was written by this daemon and must never be processed as a source. A source that
/// carries it (or the marker of earlier versions, `derived-by`) ends FAILED `own-output`.
pub const VARIANT_MARKER_KEY: &str = "variant-by";
const LEGACY_MARKER_KEY: &str = "derived-by";
pub const VARIANT_MARKER_VALUE: &str = "ec2-service";

/// What a download gathers in memory before it writes to the scratch disk.
const DOWNLOAD_BUFFER_BYTES: usize = 256 << 10;

/// `Cache-Control` of every variant: its key carries a render id, so it never changes.
pub const VARIANT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Characters kept as they are when the source key goes into a metadata header (which
/// must be ASCII); everything else is percent-encoded.
const METADATA_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why an S3 call failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    #[error("s3://{bucket}/{key} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        bucket: String,
        key: String,
        size: u64,
        limit: u64,
    },
    #[error("s3://{bucket}/{key} changed while it was downloaded")]
    Changed { bucket: String, key: String },
    #[error("S3 {operation} failed: {failure}")]
    Sdk {
        operation: &'static str,
        failure: SdkFailure,
    },
    #[error("S3 {operation} stalled: no data for {0:?}", .timeout)]
    Stalled {
        operation: &'static str,
        timeout: Duration,
    },
    #[error("cannot write the download to {path}: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl S3Error {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            S3Error::Sdk { failure, .. } => failure.kind.is_transient(),
            S3Error::Changed { .. } | S3Error::Stalled { .. } => true,
            // A full or failing scratch disk may recover (space freed, files removed).
            S3Error::Scratch { .. } => true,
            S3Error::NotFound { .. } | S3Error::TooLarge { .. } => false,
        }
    }

    /// The stable code a FAILED record carries.
    pub fn code(&self) -> &'static str {
        match self {
            S3Error::NotFound { .. } => "source-not-found",
            S3Error::TooLarge { .. } => "source-too-large",
            S3Error::Changed { .. } => "source-changed",
            S3Error::Stalled { .. } => "s3-unavailable",
            S3Error::Scratch { .. } => "scratch-error",
            S3Error::Sdk { failure, .. } => match failure.kind {
                FailureKind::Throttled => "s3-throttled",
                FailureKind::Unavailable => "s3-unavailable",
                FailureKind::Denied => "s3-access-denied",
                FailureKind::NotFound => "s3-not-found",
                FailureKind::ConditionFailed | FailureKind::Rejected => "s3-rejected",
            },
        }
    }
}

/// What HEAD says about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHead {
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// RFC 3339.
    pub last_modified: Option<String>,
    /// The object carries the variant marker: it is one of this daemon's outputs.
    pub is_variant: bool,
}

/// One page of a listing and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<Listed>,
    pub next: Option<String>,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A variant to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    pub source_key: String,
    pub recipe_version: String,
    pub render_id: String,
}

/// The S3 side of the daemon.
#[derive(Debug, Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    stall_timeout: Duration,
}

impl S3 {
    pub fn new(client: aws_sdk_s3::Client, stall_timeout: Duration) -> S3 {
        S3 {
            client,
            stall_timeout,
        }
    }

    fn sdk<E>(
        operation: &'static str,
    ) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> S3Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        move |error| S3Error::Sdk {
            operation,
            failure: classify(&error),
        }
    }

    /// HEADs a source. A missing object (or bucket) is [`S3Error::NotFound`].
    pub async fn head(&self, bucket: &str, key: &str) -> Result<SourceHead, S3Error> {
        let output = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| not_found_or(Self::sdk("HeadObject")(e), bucket, key))?;
        Ok(SourceHead {
            size: output.content_length().unwrap_or(0).max(0) as u64,
            etag: output.e_tag().map(str::to_owned),
            version_id: output.version_id().map(str::to_owned),
            last_modified: output
                .last_modified()
                .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
            is_variant: output.metadata().is_some_and(|m| {
                [VARIANT_MARKER_KEY, LEGACY_MARKER_KEY]
                    .iter()
                    .any(|k| m.get(*k).is_some_and(|v| v == VARIANT_MARKER_VALUE))
            }),
        })
    }

    /// Streams a source into `path` (created or truncated), refusing more than `limit`
    /// bytes and an object whose ETag is no longer `expected_etag`. Returns the bytes
    /// written.
    pub async fn download(
        &self,
        bucket: &str,
        key: &str,
        expected_etag: Option<&str>,
        limit: u64,
        path: &Path,
    ) -> Result<u64, S3Error> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        if let Some(etag) = expected_etag {
            request = request.if_match(etag);
        }
        let output = request
            .send()
            .await
            .map_err(|e| match Self::sdk("GetObject")(e) {
                S3Error::Sdk { failure, .. } if failure.kind == FailureKind::ConditionFailed => {
                    S3Error::Changed {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                    }
                }
                other => not_found_or(other, bucket, key),
            })?;
        if let (Some(expected), Some(actual)) = (expected_etag, output.e_tag())
            && expected != actual
        {
            return Err(S3Error::Changed {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        let scratch = |source| S3Error::Scratch {
            path: path.display().to_string(),
            source,
        };
        // The body comes in chunks of a few KiB: they are gathered, and each gathered
        // piece is written in one trip to a blocking thread (the file itself is created
        // on the first), with no copy besides the gathering.
        let mut file: Option<std::fs::File> = None;
        let mut pending = Vec::with_capacity(DOWNLOAD_BUFFER_BYTES);
        let mut body = output.body;
        let mut written = 0u64;
        loop {
            let chunk = tokio::time::timeout(self.stall_timeout, body.try_next())
                .await
                .map_err(|_| S3Error::Stalled {
                    operation: "GetObject",
                    timeout: self.stall_timeout,
                })?
                .map_err(|e| S3Error::Sdk {
                    operation: "GetObject",
                    failure: SdkFailure {
                        kind: FailureKind::Unavailable,
                        status: None,
                        code: None,
                        message: format!("reading the body: {e}"),
                    },
                })?;
            let Some(chunk) = chunk else { break };
            written += chunk.len() as u64;
            if written > limit {
                return Err(S3Error::TooLarge {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    size: written,
                    limit,
                });
            }
            pending.extend_from_slice(&chunk);
            if pending.len() >= DOWNLOAD_BUFFER_BYTES {
                (file, pending) = write_scratch(path, file, pending).await.map_err(scratch)?;
            }
        }
        write_scratch(path, file, pending).await.map_err(scratch)?;
        Ok(written)
    }

    /// PUTs one variant with its content type, its caching and the variant marker.
    ///
    /// The body is not hashed into the signature (`UNSIGNED-PAYLOAD`): a SHA-256 of every
    /// variant was about 7% of the daemon's CPU outside the render. Its integrity is
    /// kept by the CRC32 checksum the SDK still sends in a signed header, which S3
    /// verifies before it stores the object, and by TLS on the way (the stack's buckets
    /// refuse requests without it).
    pub async fn put_variant(&self, bucket: &str, upload: Upload) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(&upload.key)
            .content_type(upload.content_type)
            .cache_control(VARIANT_CACHE_CONTROL)
            .metadata(VARIANT_MARKER_KEY, VARIANT_MARKER_VALUE)
            .metadata(
                "source-key",
                utf8_percent_encode(&upload.source_key, METADATA_VALUE).to_string(),
            )
            .metadata("recipe-version", &upload.recipe_version)
            .metadata("render-id", &upload.render_id)
            .body(ByteStream::from(upload.bytes))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(Self::sdk("PutObject"))?;
        Ok(())
    }

    /// Removes objects by key (a source's variants, as its record lists them: no listing,
    /// so nothing under the same prefix, such as the variants of `a.jpg/b.jpg` next to
    /// those of `a.jpg`, is touched). Removing a key that is not there is not an error.
    pub async fn delete_keys(&self, bucket: &str, keys: &[String]) -> Result<usize, S3Error> {
        for key in keys {
            self.client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(Self::sdk("DeleteObject"))?;
        }
        Ok(keys.len())
    }

    /// One page (at most `page_size` objects, in key order) of the objects under
    /// `prefix`, from `token` (`None`: the first page).
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<String>,
        page_size: i32,
    ) -> Result<Page, S3Error> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(page_size)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(Self::sdk("ListObjectsV2"))?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|object| {
                Some(Listed {
                    key: object.key()?.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: object.e_tag().map(str::to_owned),
                    last_modified: object
                        .last_modified()
                        .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
                })
            })
            .collect();
        let next = match output.next_continuation_token() {
            Some(next) if output.is_truncated().unwrap_or(false) => Some(next.to_owned()),
            _ => None,
        };
        Ok(Page { objects, next })
    }

    /// Whether a bucket answers (HeadBucket).
    pub async fn check_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        self.client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(Self::sdk("HeadBucket"))?;
        Ok(())
    }
}

/// Appends `bytes` to the scratch file at `path` (created by the first call) on a blocking
/// thread; gives back the file and the emptied buffer for the next piece.
async fn write_scratch(
    path: &Path,
    file: Option<std::fs::File>,
    mut bytes: Vec<u8>,
) -> std::io::Result<(Option<std::fs::File>, Vec<u8>)> {
    let path = path.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = match file {
            Some(file) => file,
            None => std::fs::File::create(&path)?,
        };
        file.write_all(&bytes)?;
        bytes.clear();
        Ok((Some(file), bytes))
    });
    task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

fn not_found_or(error: S3Error, bucket: &str, key: &str) -> S3Error {
    match &error {
        S3Error::Sdk { failure, .. } if failure.kind == FailureKind::NotFound => {
            S3Error::NotFound {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }
        }
        _ => error,
    }
}

/// Where a variant of `source_key` goes: `<prefix><source key>/<render id>/<variant>.<ext>`.
/// The render id makes the key immutable: a new render of the same source writes new keys.
pub fn variant_key(
    prefix: &str,
    source_key: &str,
    render_id: &str,
    name: &str,
    extension: &str,
) -> String {
    format!("{prefix}{source_key}/{render_id}/{name}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_keys_follow_the_documented_layout() {
        assert_eq!(
            variant_key(
                "variants/",
                "uploads/red flower+1 ü.jpg",
                "3f9a1c2e0b7d",
                "thumb",
                "jpg"
            ),
            "variants/uploads/red flower+1 ü.jpg/3f9a1c2e0b7d/thumb.jpg"
        );
        assert_eq!(
            utf8_percent_encode("uploads/red flower+ü.jpg", METADATA_VALUE).to_string(),
            "uploads/red%20flower%2B%C3%BC.jpg"
        );
    }

    #[test]
    fn codes_and_transience() {
        let not_found = S3Error::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert_eq!(not_found.code(), "source-not-found");
        assert!(!not_found.is_transient());
        let throttled = S3Error::Sdk {
            operation: "GetObject",
            failure: SdkFailure {
                kind: FailureKind::Throttled,
                status: Some(503),
                code: Some("SlowDown".into()),
                message: "slow down".into(),
            },
        };
        assert!(throttled.is_transient());
        assert_eq!(throttled.code(), "s3-throttled");
    }
}

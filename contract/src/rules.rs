//! What both sides agree a job is: the source bucket, the daemon's own outputs (never a
//! source), and a key S3 could really hold. The forwarder runs these rules before it
//! sends, the daemon again when it admits, and the daemon's SQS intake when it reads S3
//! events itself, so that no side refuses what another has already accepted.
//!
//! A key may hold any UTF-8 S3 allows, control characters included: they are processed
//! like any other key and only escaped when written to a log ([`escape_key`]).

use std::borrow::Cow;
use std::fmt;

use crate::JobRequest;

/// Default key prefix, in the output bucket, under which the daemon writes variants.
pub const VARIANT_PREFIX: &str = "variants/";

/// Longest key S3 allows, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The buckets of one pipeline and where its variants live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The bucket sources are uploaded to: jobs for another bucket are refused.
    pub source_bucket: String,
    /// The bucket the daemon writes variants to.
    pub output_bucket: String,
    /// Key prefix of the variants in the output bucket (`variants/`).
    pub variant_prefix: String,
}

/// Why a job is refused. Only [`Refusal::WrongBucket`] and [`Refusal::InvalidKey`] are
/// errors of the sender; [`Refusal::OwnOutput`] is a deliberate skip: the object is one of
/// the daemon's own variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The job names a bucket other than the source bucket (a misrouted notification).
    #[error("bucket {bucket:?} is not the source bucket of this pipeline")]
    WrongBucket {
        /// The bucket the job named.
        bucket: String,
    },
    /// The object is one of the daemon's own variants (output bucket, variant prefix).
    #[error(
        "the object is a variant written by the daemon (under {prefix:?} in the output bucket)"
    )]
    OwnOutput {
        /// The variant prefix.
        prefix: String,
    },
    /// A key no S3 object can have: empty or longer than [`MAX_KEY_BYTES`].
    #[error("the key is {0}")]
    InvalidKey(&'static str),
}

impl Refusal {
    /// Stable kebab-case code, as in the daemon's per-job answers.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::WrongBucket { .. } => "wrong-bucket",
            Refusal::OwnOutput { .. } => "own-output",
            Refusal::InvalidKey(_) => "invalid-key",
        }
    }

    /// Whether the sender should treat the refusal as done rather than failed: the daemon
    /// never processes its own outputs, and retrying will not change that.
    pub fn is_deliberate_skip(&self) -> bool {
        matches!(self, Refusal::OwnOutput { .. })
    }

    /// The refusal for a stable code, as a sender reads it back from an answer.
    pub fn code_is_deliberate_skip(code: &str) -> bool {
        code == "own-output"
    }
}

impl Rules {
    /// Whether `bucket`/`key` is one of the daemon's own variants: exactly the keys under
    /// the variant prefix of the output bucket, nothing else (a folder named `variants`
    /// inside the source prefix is an ordinary folder).
    ///
    /// ```
    /// use pipeline_contract::Rules;
    /// let rules = Rules {
    ///     source_bucket: "photos".into(),
    ///     output_bucket: "photos-out".into(),
    ///     variant_prefix: "variants/".into(),
    /// };
    /// assert!(rules.is_own_output("photos-out", "variants/uploads/a.jpg/r1/thumb.webp"));
    /// assert!(!rules.is_own_output("photos", "variants/a.jpg"));
    /// assert!(!rules.is_own_output("photos-out", "uploads/2024/variants/beach.jpg"));
    /// ```
    pub fn is_own_output(&self, bucket: &str, key: &str) -> bool {
        !self.variant_prefix.is_empty()
            && bucket == self.output_bucket
            && key.starts_with(&self.variant_prefix)
    }

    /// Checks one job; `Ok` means it is a job this pipeline processes.
    pub fn check(&self, job: &JobRequest) -> Result<(), Refusal> {
        check_key(&job.key)?;
        if self.is_own_output(&job.bucket, &job.key) {
            return Err(Refusal::OwnOutput {
                prefix: self.variant_prefix.clone(),
            });
        }
        if job.bucket != self.source_bucket {
            return Err(Refusal::WrongBucket {
                bucket: job.bucket.clone(),
            });
        }
        Ok(())
    }
}

/// Whether `key` is one S3 could hold: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn check_key(key: &str) -> Result<(), Refusal> {
    if key.is_empty() {
        return Err(Refusal::InvalidKey("empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Refusal::InvalidKey("longer than 1024 bytes"));
    }
    Ok(())
}

/// A key as it should appear in a log line: control characters (a TAB, a newline, an
/// escape) written as `\t`, `\n`, `\u{1b}`, backslashes doubled, everything else as it is,
/// so that one key is always one readable token of one line.
pub fn escape_key(key: &str) -> Cow<'_, str> {
    if key.chars().any(|c| c.is_control() || c == '\\') {
        Cow::Owned(
            key.chars()
                .map(|c| {
                    if c.is_control() || c == '\\' {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(key)
    }
}

/// [`escape_key`] as a `Display` value, for `tracing` fields (`key = %LogKey(&key)`).
#[derive(Debug, Clone, Copy)]
pub struct LogKey<'a>(pub &'a str);

impl fmt::Display for LogKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_key(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobAction;

    fn rules() -> Rules {
        Rules {
            source_bucket: "photos".into(),
            output_bucket: "photos-out".into(),
            variant_prefix: "variants/".into(),
        }
    }

    fn job(bucket: &str, key: &str) -> JobRequest {
        JobRequest {
            action: JobAction::Process,
            bucket: bucket.into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: None,
            event_name: "ObjectCreated:Put".into(),
        }
    }

    #[test]
    fn a_folder_named_variants_in_the_source_bucket_is_an_ordinary_folder() {
        let r = rules();
        assert_eq!(
            r.check(&job("photos", "uploads/2024/variants/beach.jpg")),
            Ok(())
        );
        assert_eq!(r.check(&job("photos", "variants/beach.jpg")), Ok(()));
        assert_eq!(
            r.check(&job("photos-out", "variants/uploads/a.jpg/r1/large.jpg"))
                .map_err(|e| e.code()),
            Err("own-output")
        );
        assert_eq!(
            r.check(&job("photos-out", "uploads/a.jpg"))
                .map_err(|e| e.code()),
            Err("wrong-bucket")
        );
        assert_eq!(
            r.check(&job("elsewhere", "uploads/a.jpg"))
                .map_err(|e| e.code()),
            Err("wrong-bucket")
        );
    }

    #[test]
    fn one_bucket_for_sources_and_variants_still_keeps_the_variants_out() {
        let same = Rules {
            output_bucket: "photos".into(),
            ..rules()
        };
        assert!(same.is_own_output("photos", "variants/uploads/a.jpg/r1/thumb.webp"));
        assert!(!same.is_own_output("photos", "uploads/variants/a.jpg"));
        assert_eq!(same.check(&job("photos", "uploads/a.jpg")), Ok(()));
        let none = Rules {
            variant_prefix: String::new(),
            ..same
        };
        assert!(!none.is_own_output("photos", "anything"));
    }

    #[test]
    fn control_characters_are_valid_keys_and_escaped_in_logs() {
        let r = rules();
        assert_eq!(r.check(&job("photos", "uploads/a\tb.jpg")), Ok(()));
        assert_eq!(
            r.check(&job("photos", "uploads/a\nb\u{1b}[31m.jpg")),
            Ok(())
        );
        assert_eq!(escape_key("uploads/a\tb.jpg"), "uploads/a\\tb.jpg");
        assert_eq!(escape_key("a\nb\u{1b}c\\d"), "a\\nb\\u{1b}c\\\\d");
        assert_eq!(escape_key("plain café.jpg"), "plain café.jpg");
        assert!(matches!(escape_key("plain.jpg"), Cow::Borrowed(_)));
        assert_eq!(LogKey("a\tb").to_string(), "a\\tb");
    }

    #[test]
    fn keys_s3_cannot_hold_are_refused() {
        let r = rules();
        assert_eq!(
            r.check(&job("photos", "")).map_err(|e| e.code()),
            Err("invalid-key")
        );
        assert_eq!(
            r.check(&job("photos", &"x".repeat(1025)))
                .map_err(|e| e.code()),
            Err("invalid-key")
        );
        assert_eq!(r.check(&job("photos", &"é".repeat(512))), Ok(()));
        assert!(
            Refusal::OwnOutput {
                prefix: "v/".into()
            }
            .is_deliberate_skip()
        );
        assert!(Refusal::code_is_deliberate_skip("own-output"));
        assert!(!Refusal::code_is_deliberate_skip("wrong-bucket"));
    }
}

//! Which S3 events become jobs: the [`Rules`] of the pipeline (the source bucket, never the
//! daemon's own outputs), then the configured source prefix and suffixes.
//!
//! Used by the forwarder and by the daemon when it reads S3 events from SQS itself, so both
//! intakes forward exactly the same keys.

use std::fmt;

use crate::rules::{Refusal, Rules};

/// Why a record was deliberately not made into a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The object is one of the daemon's variants (see [`Rules::is_own_output`]).
    OwnOutput,
    /// The key does not start with the source prefix.
    OutsidePrefix,
    /// The key ends with none of the accepted suffixes.
    SuffixNotAccepted,
    /// The event is neither `ObjectCreated:*` nor a removal.
    UnsupportedEvent(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnOutput => f.write_str("own-output"),
            Self::OutsidePrefix => f.write_str("outside-prefix"),
            Self::SuffixNotAccepted => f.write_str("suffix-not-accepted"),
            Self::UnsupportedEvent(name) => write!(f, "unsupported-event {name}"),
        }
    }
}

/// The event filter (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    rules: Rules,
    source_prefix: String,
    suffixes: Vec<String>,
}

impl Filter {
    /// A filter forwarding what `rules` admit, under `source_prefix` (empty: all) and
    /// ending with one of `suffixes` (empty: any; ASCII case ignored).
    pub fn new(rules: Rules, source_prefix: impl Into<String>, suffixes: Vec<String>) -> Self {
        Self {
            rules,
            source_prefix: source_prefix.into(),
            suffixes,
        }
    }

    /// The pipeline's rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Checks a decoded key of the source bucket against the prefix and the suffixes.
    pub fn check_key(&self, key: &str) -> Result<(), Skip> {
        if !key.starts_with(&self.source_prefix) {
            return Err(Skip::OutsidePrefix);
        }
        let suffix_ok = self.suffixes.is_empty()
            || self.suffixes.iter().any(|suffix| {
                key.len() >= suffix.len()
                    && key.is_char_boundary(key.len() - suffix.len())
                    && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            });
        if !suffix_ok {
            return Err(Skip::SuffixNotAccepted);
        }
        Ok(())
    }

    /// The whole check of one object: `Ok(Ok(()))` forward it, `Ok(Err(skip))` skip it on
    /// purpose, `Err(refusal)` the event itself is wrong for this pipeline (a misrouted
    /// bucket, an impossible key) and must not vanish silently.
    pub fn check(&self, job: &crate::JobRequest) -> Result<Result<(), Skip>, Refusal> {
        match self.rules.check(job) {
            Ok(()) => Ok(self.check_key(&job.key)),
            Err(refusal) if refusal.is_deliberate_skip() => Ok(Err(Skip::OwnOutput)),
            Err(refusal) => Err(refusal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobAction, JobRequest};

    fn rules() -> Rules {
        Rules {
            source_bucket: "photos".into(),
            output_bucket: "photos-out".into(),
            variant_prefix: "variants/".into(),
        }
    }

    fn filter() -> Filter {
        Filter::new(
            rules(),
            "uploads/",
            vec![".jpg".into(), ".jpeg".into(), ".PNG".into()],
        )
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
    fn accepts_keys_under_the_prefix_with_an_accepted_suffix() {
        let f = filter();
        assert_eq!(f.check_key("uploads/a.jpg"), Ok(()));
        assert_eq!(f.check_key("uploads/deep/er/red flower.JPG"), Ok(()));
        assert_eq!(f.check_key("uploads/x.png"), Ok(()));
        assert_eq!(f.check_key("uploads/café.jpeg"), Ok(()));
        assert_eq!(f.check_key("uploads/2024/variants/beach.jpg"), Ok(()));
    }

    #[test]
    fn refuses_the_rest_with_a_reason() {
        let f = filter();
        assert_eq!(f.check_key("other/a.jpg"), Err(Skip::OutsidePrefix));
        assert_eq!(f.check_key("Uploads/a.jpg"), Err(Skip::OutsidePrefix));
        assert_eq!(f.check_key("uploads/a.gif"), Err(Skip::SuffixNotAccepted));
        assert_eq!(f.check_key("uploads/jpg"), Err(Skip::SuffixNotAccepted));
        assert_eq!(f.check_key("uploads/é"), Err(Skip::SuffixNotAccepted));
    }

    #[test]
    fn own_outputs_are_skipped_and_foreign_buckets_refused_whatever_the_prefix() {
        let open = Filter::new(rules(), "", Vec::new());
        assert_eq!(open.check(&job("photos", "anything.bin")), Ok(Ok(())));
        assert_eq!(
            open.check(&job("photos-out", "variants/uploads/a.jpg/r1/thumb.webp")),
            Ok(Err(Skip::OwnOutput))
        );
        assert_eq!(
            open.check(&job("photos", "uploads/variants/a.jpg")),
            Ok(Ok(()))
        );
        assert_eq!(
            open.check(&job("other", "uploads/a.jpg"))
                .map_err(|r| r.code()),
            Err("wrong-bucket")
        );
    }
}

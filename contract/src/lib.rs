//! The wire contract between lambda-forwarder and ec2-service.
//!
//! Everything that crosses the wire between the two lives here, so that both sides run the
//! same code and cannot drift: the job request and response types ([`JobsRequest`],
//! [`JobsAccepted`]), the error body ([`ErrorBody`]), the path ([`JOBS_PATH`]), the signature
//! headers with [`sign`] and [`verify`], the rule that keeps the daemon's own outputs out of
//! the pipeline ([`is_derived_key`]) and the S3 `sequencer` ordering
//! ([`compare_sequencers`]).
//!
//! Deliberately absent: tokio, AWS SDKs and HTTP frameworks. Callers adapt their own request
//! types (headers are read through a lookup closure, see [`ReceivedSignature::from_lookup`])
//! and pass the clock in, so everything here is plain, synchronous and testable.

mod jobs;
mod sequencer;
mod signature;

pub use jobs::{AcceptedJob, ErrorBody, JobAction, JobRequest, JobsAccepted, JobsRequest};
pub use sequencer::compare_sequencers;
pub use signature::{
    DEFAULT_MAX_SKEW_SECS, KEY_ID_HEADER, KeyError, KeySet, MAX_KEY_ID_LEN, MIN_SECRET_LEN,
    ReceivedSignature, SIGNATURE_HEADER, SignatureError, SignatureHeaders, SigningKey,
    TIMESTAMP_HEADER, sign, string_to_sign, verify,
};

/// Path of the endpoint that accepts jobs (`POST`, JSON [`JobsRequest`] body).
pub const JOBS_PATH: &str = "/v1/jobs";

/// HTTP method of the jobs endpoint, as it enters the signature.
pub const JOBS_METHOD: &str = "POST";

/// Default key prefix under which the daemon writes variants (in the output bucket).
///
/// The forwarder never forwards a key that [`is_derived_key`] matches with this prefix (or
/// the configured one), whatever the bucket: trigger loops must be impossible even when a
/// notification is misconfigured to watch the output bucket.
pub const DERIVED_PREFIX: &str = "variants/";

/// Whether `key` (already URL-decoded) is, or may be, one of the daemon's own outputs.
///
/// True when the key starts with `derived_prefix`, or contains it right after a `/` (a
/// variant of a variant, or outputs copied under another prefix): such a key is never turned
/// into a job. An empty `derived_prefix` matches nothing.
///
/// ```
/// use pipeline_contract::{is_derived_key, DERIVED_PREFIX};
/// assert!(is_derived_key("variants/uploads/a.jpg/thumb.webp", DERIVED_PREFIX));
/// assert!(is_derived_key("uploads/variants/a.jpg", DERIVED_PREFIX));
/// assert!(!is_derived_key("uploads/myvariants/a.jpg", DERIVED_PREFIX));
/// assert!(!is_derived_key("uploads/a.jpg", DERIVED_PREFIX));
/// ```
pub fn is_derived_key(key: &str, derived_prefix: &str) -> bool {
    if derived_prefix.is_empty() {
        return false;
    }
    key.starts_with(derived_prefix)
        || key
            .match_indices('/')
            .any(|(slash, _)| key[slash + 1..].starts_with(derived_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_recognised_at_the_start_and_after_any_slash() {
        assert!(is_derived_key("variants/a.jpg/thumb.webp", DERIVED_PREFIX));
        assert!(is_derived_key("variants/", DERIVED_PREFIX));
        assert!(is_derived_key("a/b/c/variants/d.jpg", DERIVED_PREFIX));
        assert!(is_derived_key("/variants/d.jpg", DERIVED_PREFIX));
        assert!(!is_derived_key("variants.jpg", DERIVED_PREFIX));
        assert!(!is_derived_key("uploads/variantsx/a.jpg", DERIVED_PREFIX));
        assert!(!is_derived_key("uploads/my variants/a.jpg", DERIVED_PREFIX));
        assert!(!is_derived_key("Variants/a.jpg", DERIVED_PREFIX));
        assert!(!is_derived_key("anything", ""));
        assert!(is_derived_key("out/x.png", "out/"));
    }
}

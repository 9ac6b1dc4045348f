//! The wire contract between lambda-forwarder and ec2-service, and the rules both follow.
//!
//! Everything that crosses the wire, or that both sides must agree on, lives here so that
//! both run the same code and cannot drift: the job request and the per-job answers
//! ([`JobsRequest`], [`JobAnswers`]), the error body ([`ErrorBody`]), the path
//! ([`JOBS_PATH`]), the signature headers with [`sign`] and [`verify`], what a valid job is
//! and which objects are the daemon's own outputs ([`Rules`]), the tolerant reading of S3
//! event notifications ([`s3_event`]) and the event filter ([`Filter`]), and the S3
//! `sequencer` ordering ([`compare_sequencers`]).
//!
//! Deliberately absent: tokio, AWS SDKs and HTTP frameworks. Callers adapt their own request
//! types (headers are read through a lookup closure, see [`ReceivedSignature::from_lookup`])
//! and pass the clock in, so everything here is plain, synchronous and testable.

pub mod filter;
mod jobs;
mod rules;
pub mod s3_event;
mod sequencer;
mod signature;

pub use filter::{Filter, Skip};
pub use jobs::{
    AnswerStatus, ErrorBody, JobAction, JobAnswer, JobAnswers, JobRequest, JobsRequest,
    OperatorJob, OperatorMessage,
};
pub use rules::{LogKey, MAX_KEY_BYTES, Refusal, Rules, VARIANT_PREFIX, check_key, escape_key};
pub use sequencer::compare_sequencers;
pub use signature::{
    CheckedHeaders, DEFAULT_MAX_SKEW_SECS, KEY_ID_HEADER, KeyError, KeySet, MAX_KEY_ID_LEN,
    MIN_SECRET_LEN, ReceivedSignature, SIGNATURE_HEADER, SignatureError, SignatureHeaders,
    SigningKey, TIMESTAMP_HEADER, check_headers, sign, string_to_sign, verify,
};

/// Path of the endpoint that accepts jobs (`POST`, JSON [`JobsRequest`] body).
pub const JOBS_PATH: &str = "/v1/jobs";

/// HTTP method of the jobs endpoint, as it enters the signature.
pub const JOBS_METHOD: &str = "POST";

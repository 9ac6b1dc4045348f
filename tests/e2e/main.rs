//! End-to-end tests: the `ec2-service` daemon as a real process against a real S3 and
//! DynamoDB server process on loopback (moto server 5.2.5, started by the harness; run
//! `scripts/test` once to install it). One binary, one module per area:
//!
//! - `accept`: signatures, malformed bodies, the bounded queue.
//! - `processing`: variants and records, keys, idempotence, ordering, failures, deletes.
//! - `resilience`: SIGKILL and restart, an outage of the server, SIGTERM drain, SIGHUP.
//! - `pipeline`: the whole path from an S3 upload: notification, SQS, the forwarder
//!   (through `local-pump`), the daemon, variants and records.
//! - `operator`: the CLI (status, jobs, reprocess, reconcile), health and metrics, and
//!   configuration errors.
//! - `edges`: the upload API behind the local gateway's JWT check (the demo's issuer),
//!   refusals, a caller's own records, CORS, and a browser-style upload through the pipeline.
//! - `cloudwatch`: the job metrics the daemon publishes, read back from moto's CloudWatch.
//! - `upload_policy`: the presigned POST against s3s-fs, an S3 that enforces its policy.

mod accept;
mod cloudwatch;
mod edges;
mod fleet;
mod operator;
mod pipeline;
mod processing;
mod resilience;
mod seams;
mod soak;
mod support;
mod upload_policy;

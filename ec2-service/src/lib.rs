//! ec2-service: the image pipeline daemon and its operator tools.
//!
//! The folders follow a photo's path through the daemon:
//!
//! - [`intake`]: how jobs arrive (`POST /v1/jobs`, signed by the forwarder).
//! - [`spool`]: the accepted jobs, durable on the scratch disk, and their queue.
//! - [`work`]: the work loop: dispatching, one attempt of a job, retries, the render pool.
//! - [`pipeline`]: the pure processing core (bytes and a recipe in, variants and
//!   metadata out).
//! - [`aws`]: the AWS edge: S3 (sources and variants) and DynamoDB (records).
//! - [`admin`]: the loopback admin endpoints the operator commands call, and reconcile.
//! - [`daemon`]: `serve`: wiring, listeners, readiness, systemd, logs, signals.
//! - [`cli`]: the command line (`serve`, `status`, `jobs`, `reprocess`, `reconcile`,
//!   `process`).
//!
//! Beside them: [`settings`] (layered configuration), [`metrics`] (counters and their
//! Prometheus text), [`http_error`] (the error every handler answers with) and
//! [`error_chain`].

pub mod admin;
pub mod aws;
pub mod cli;
pub mod daemon;
pub mod error_chain;
pub mod faults;
pub mod http_error;
pub mod intake;
pub mod metrics;
pub mod pipeline;
pub mod settings;
pub mod spool;
pub mod work;

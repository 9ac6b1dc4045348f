//! ec2-service: the image pipeline daemon and its operator tools.
//!
//! - [`pipeline`]: the pure processing core (bytes and a recipe in, variants and
//!   metadata out).
//! - [`settings`]: layered configuration.
//! - [`cli`]: the command line (`serve`, `status`, `jobs`, `reprocess`, `reconcile`,
//!   `process`).
//!
//! The daemon, from the edge inwards:
//!
//! - [`daemon`]: `serve`: wiring, signals, systemd notifications, drain and reload.
//! - [`http`]: `POST /v1/jobs`, health, readiness and metrics; [`admin`]: the loopback
//!   admin endpoints and reconcile.
//! - [`queue`] and [`store`]: the bounded queue and the durable job files on the scratch
//!   disk; [`job`]: a job's identity and event ordering.
//! - [`worker`]: processing one job and its failure handling; [`render`]: the bounded
//!   rayon pool and memory budget.
//! - [`storage`] (S3) and [`records`] (DynamoDB) over [`aws`] (SDK set-up, error mapping).
//! - [`health`], [`metrics`], [`telemetry`] (logs), [`systemd`] (sd_notify),
//!   [`http_client`] (loopback calls of the operator commands).

pub mod admin;
pub mod aws;
pub mod cli;
pub mod daemon;
pub mod health;
pub mod http;
pub mod http_client;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod records;
pub mod render;
pub mod settings;
pub mod storage;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod worker;

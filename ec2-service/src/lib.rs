//! ec2-service: the image pipeline daemon and its operator tools.
//!
//! - [`pipeline`]: the pure processing core (bytes and a recipe in, variants and
//!   metadata out).
//! - [`settings`]: layered configuration.
//! - [`cli`]: the command line (`process`, and the daemon's commands).

pub mod cli;
pub mod pipeline;
pub mod settings;

//! Forwarder tests, one binary: handler tests against a loopback daemon stub, and the built
//! `bootstrap` run as a Lambda process against a loopback Runtime API (and a moto server
//! process for its SSM read).

mod handler;
/// The moto server process, shared with the workspace's end-to-end tests.
#[path = "../../../tests/e2e/support/moto.rs"]
#[allow(dead_code)]
mod moto;
mod runtime;
mod support;

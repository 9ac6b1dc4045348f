//! Forwarder tests, one binary: handler tests against a loopback daemon stub, and the built
//! `bootstrap` run as a Lambda process against a loopback Runtime API.

mod handler;
mod runtime;
mod support;

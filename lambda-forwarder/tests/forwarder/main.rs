//! Forwarder tests.

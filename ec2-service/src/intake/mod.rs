//! How jobs arrive: [`accept`], the signed `POST /v1/jobs` of the forwarder.

pub mod accept;

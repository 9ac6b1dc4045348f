//! The spool: every accepted, unfinished job, durably on the scratch disk ([`files`]) and
//! indexed in memory ([`queue`]): admission, the order jobs start in, what is in flight.
//! [`job`] is what one job is: its identity and its place in the event order.

pub mod files;
pub mod job;
pub mod queue;

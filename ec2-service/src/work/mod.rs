//! The work loop: the dispatcher that starts jobs and survives their panics
//! ([`dispatch`]), one attempt of a job and what follows from it ([`attempt`]), how a job
//! ends ([`outcome`]), the retry policy ([`retry`]) and the bounded rayon pool that renders
//! under the memory budget ([`render_pool`]).
//!
//! Jobs come from the [`spool`](crate::spool) and end as records (through
//! [`aws`](crate::aws)); nothing here speaks HTTP.

pub mod attempt;
pub mod dispatch;
pub mod outcome;
pub mod render_pool;
pub mod retry;

use std::sync::{Arc, RwLock};

use crate::aws::records::Records;
use crate::aws::s3::S3;
use crate::metrics::Metrics;
use crate::settings::RetrySettings;
use crate::spool::files::JobFiles;
use crate::spool::queue::Queue;
use render_pool::{RenderPool, RenderSettings};

/// Everything the workers share.
#[derive(Debug)]
pub struct Context {
    pub queue: Arc<Queue>,
    pub files: JobFiles,
    pub s3: S3,
    pub records: Records,
    pub pool: RenderPool,
    pub render: RwLock<Arc<RenderSettings>>,
    pub metrics: Arc<Metrics>,
    pub retry: RetrySettings,
    pub output_bucket: String,
    pub variant_prefix: String,
    /// Base of the variants' public URLs in their records (a CloudFront domain), if any.
    pub public_base_url: Option<String>,
    /// Turns true when the daemon stops: waits for the record store give up, the job
    /// staying stored.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The SQS messages held, in fleet mode: a job from a message ends by deleting it or
    /// making it visible again, never in a file.
    pub messages: Option<Arc<crate::intake::sqs::Messages>>,
}

impl Context {
    /// The recipe, limits and watermark in force (replaced on SIGHUP).
    pub fn render_settings(&self) -> Arc<RenderSettings> {
        self.render
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_render_settings(&self, settings: RenderSettings) {
        *self.render.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }
}

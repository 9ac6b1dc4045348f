//! The admin endpoints the operator commands call, served on a loopback-only listener
//! (`[admin] listen`): `GET /admin/status`, `GET /admin/jobs[?failed=true]`,
//! `POST /admin/reprocess`, `POST /admin/reconcile` (in [`reconcile`]).
//!
//! Why the daemon and not the files: only the running daemon knows what is in flight, its
//! readiness and its recent outcomes, and only it may add jobs to its queue (the store and
//! the in-memory queue must agree). The answers are JSON (types below, shared with the
//! CLI that prints them for a person).

pub mod reconcile;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use actix_web::{HttpResponse, web};
use pipeline_contract::{JobAnswers, JobRequest};
use serde::{Deserialize, Serialize};

use crate::daemon::health::Report;
use crate::daemon::http::Observed;
use crate::http_error::ServiceError;
use crate::intake::Intake;
use crate::spool::job::{Ending, Job, Origin};
use crate::spool::queue::{Depth, Finished, Pending};

/// `GET /admin/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub started_at: String,
    pub uptime_secs: u64,
    pub accepting: bool,
    pub recipe_version: String,
    pub queue: Depth,
    /// Jobs finished since start, by status.
    pub finished: BTreeMap<Ending, u64>,
    /// Parked jobs (key, reason), oldest first: they cannot end until an operator acts.
    #[serde(default)]
    pub parked: Vec<(String, String)>,
    /// The last failures, newest first (at most 10).
    pub recent_failures: Vec<Finished>,
    pub readiness: Report,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileState>,
}

/// `GET /admin/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jobs {
    /// Unfinished jobs, oldest first.
    pub pending: Vec<Pending>,
    /// Recently finished jobs, newest first.
    pub recent: Vec<Finished>,
}

/// `POST /admin/reprocess` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReprocessRequest {
    pub keys: Vec<String>,
}

/// `POST /admin/reconcile` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileRequest {
    #[serde(default)]
    pub prefix: Option<String>,
}

/// What a reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub prefix: String,
    /// Source objects listed (the daemon's own variants excluded).
    pub listed: u64,
    /// Listing pages read, one at a time (each checked and enqueued before the next).
    #[serde(default)]
    pub pages: u64,
    /// The most objects held at once: one page.
    #[serde(default)]
    pub largest_page: u64,
    pub up_to_date: u64,
    /// Already held by an unfinished job.
    pub already_queued: u64,
    pub enqueued: u64,
    /// Why objects were enqueued: `missing`, `failed`, `old-recipe`, `changed`,
    /// `stale-pending`, `deleted`.
    pub reasons: BTreeMap<String, u64>,
    /// False when it stopped early (queue full); run it again later.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_because: Option<String>,
}

/// The last reconcile, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconcileState {
    pub started_at: String,
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReconcileReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /admin/reconcile` answer: the report when it finished quickly, else the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconcileAnswer {
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReconcileReport>,
}

/// What the admin handlers share.
#[derive(Debug)]
pub struct AdminState {
    pub intake: Arc<Intake>,
    pub observed: Arc<Observed>,
    pub started: Instant,
    pub started_at: String,
    /// Objects per listing page while reconciling.
    pub reconcile_page_size: i32,
    /// Fleet mode: reconcile sends its jobs to this queue, under a lease.
    pub fleet: Option<reconcile::FleetQueue>,
    reconciling: AtomicBool,
    last_reconcile: std::sync::Mutex<Option<ReconcileState>>,
}

impl AdminState {
    pub fn new(
        intake: Arc<Intake>,
        observed: Arc<Observed>,
        started: Instant,
        started_at: String,
        reconcile_page_size: i32,
        fleet: Option<reconcile::FleetQueue>,
    ) -> AdminState {
        AdminState {
            intake,
            observed,
            started,
            started_at,
            reconcile_page_size,
            fleet,
            reconciling: AtomicBool::new(false),
            last_reconcile: std::sync::Mutex::new(None),
        }
    }

    fn recipe_version(&self) -> String {
        self.observed.ctx.render_settings().recipe.version.clone()
    }

    fn set_reconcile(&self, state: ReconcileState) {
        *self
            .last_reconcile
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(state);
    }
}

/// The admin routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/status", web::get().to(status))
        .route("/admin/jobs", web::get().to(jobs))
        .route("/admin/reprocess", web::post().to(reprocess))
        .route("/admin/reconcile", web::post().to(reconcile::reconcile));
}

async fn status(state: web::Data<AdminState>) -> Result<HttpResponse, ServiceError> {
    let observed = &state.observed;
    let queue = &observed.queue;
    let readiness = observed.readiness().await?;
    let finished = Ending::ALL
        .iter()
        .map(|e| (*e, observed.metrics.finished_count(*e)))
        .collect();
    let recent_failures = queue
        .recent()
        .into_iter()
        .filter(|f| f.status == Ending::Failed)
        .take(10)
        .collect();
    Ok(HttpResponse::Ok().json(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: state.started_at.clone(),
        uptime_secs: state.started.elapsed().as_secs(),
        accepting: queue.is_accepting(),
        recipe_version: state.recipe_version(),
        queue: queue.depth(),
        finished,
        parked: queue.parked(),
        recent_failures,
        readiness,
        reconcile: state
            .last_reconcile
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }))
}

#[derive(Debug, Deserialize)]
struct JobsQuery {
    #[serde(default)]
    failed: bool,
}

async fn jobs(state: web::Data<AdminState>, query: web::Query<JobsQuery>) -> HttpResponse {
    let queue = &state.observed.queue;
    let mut pending = queue.pending();
    let mut recent = queue.recent();
    if query.failed {
        pending.retain(|p| p.last_error.is_some());
        recent.retain(|f| f.status == Ending::Failed);
    }
    HttpResponse::Ok().json(Jobs { pending, recent })
}

async fn reprocess(
    state: web::Data<AdminState>,
    body: web::Json<ReprocessRequest>,
) -> Result<HttpResponse, ServiceError> {
    let bucket = state.intake.rules.source_bucket.clone();
    let requests: Vec<JobRequest> = body
        .into_inner()
        .keys
        .into_iter()
        .map(|key| Job::operator_request(Origin::Reprocess, &bucket, &key, None))
        .collect();
    let answers = state
        .intake
        .admit(requests, |request| {
            Job::operator(Origin::Reprocess, request)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(JobAnswers { jobs: answers }))
}

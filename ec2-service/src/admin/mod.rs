//! The admin endpoints the operator commands call, served on a loopback-only listener
//! (`[admin] listen`): `GET /admin/status`, `GET /admin/jobs[?failed=true]`,
//! `POST /admin/reprocess`, `POST /admin/reconcile`; and reconcile itself.
//!
//! Why the daemon and not the files: only the running daemon knows what is in flight, its
//! readiness and its recent outcomes, and only it may add jobs to its queue (the store and
//! the in-memory queue must agree). The answers are JSON (types below, shared with the
//! CLI that prints them for a person).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use pipeline_contract::{JobsAccepted, is_derived_key};
use serde::{Deserialize, Serialize};

use crate::aws::records::{STATUS_DELETED, STATUS_DONE, STATUS_FAILED, STATUS_PENDING};
use crate::daemon::health::Report;
use crate::daemon::http::readiness;
use crate::http_error::ServiceError;
use crate::intake::accept::{AppState, admit};
use crate::spool::job::{Job, Origin};
use crate::spool::queue::{Depth, Finished, Pending};
use crate::work::Context;

/// How long `POST /admin/reconcile` waits for the reconcile before answering that it goes
/// on in the background (the CLI promises an answer within a second).
const RECONCILE_WAIT: Duration = Duration::from_millis(700);
/// Jobs admitted per batch while reconciling.
const RECONCILE_BATCH: usize = 100;

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
    pub finished: BTreeMap<String, u64>,
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
    /// Source objects listed (derived objects excluded).
    pub listed: u64,
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

/// What the admin handlers share: the HTTP state and the workers' context.
#[derive(Debug)]
pub struct AdminState {
    pub app: Arc<AppState>,
    pub ctx: Arc<Context>,
    reconciling: AtomicBool,
    last_reconcile: std::sync::Mutex<Option<ReconcileState>>,
}

impl AdminState {
    pub fn new(app: Arc<AppState>, ctx: Arc<Context>) -> AdminState {
        AdminState {
            app,
            ctx,
            reconciling: AtomicBool::new(false),
            last_reconcile: std::sync::Mutex::new(None),
        }
    }

    fn recipe_version(&self) -> String {
        self.ctx.render_settings().recipe.version.clone()
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
        .route("/admin/reconcile", web::post().to(reconcile));
}

async fn status(state: web::Data<AdminState>) -> Result<HttpResponse, ServiceError> {
    let app = &state.app;
    let readiness = readiness(app).await?;
    let finished = ["DONE", "FAILED", "DELETED", "SKIPPED"]
        .iter()
        .map(|s| ((*s).to_owned(), app.metrics.finished_count(s)))
        .collect();
    let recent_failures = app
        .queue
        .recent()
        .into_iter()
        .filter(|f| f.status == STATUS_FAILED)
        .take(10)
        .collect();
    Ok(HttpResponse::Ok().json(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: app.started_at.clone(),
        uptime_secs: app.started.elapsed().as_secs(),
        accepting: app.queue.is_accepting(),
        recipe_version: state.recipe_version(),
        queue: app.queue.depth(),
        finished,
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
    let queue = &state.app.queue;
    let mut pending = queue.pending();
    let mut recent = queue.recent();
    if query.failed {
        pending.retain(|p| p.last_error.is_some());
        recent.retain(|f| f.status == STATUS_FAILED);
    }
    HttpResponse::Ok().json(Jobs { pending, recent })
}

async fn reprocess(
    state: web::Data<AdminState>,
    body: web::Json<ReprocessRequest>,
) -> Result<HttpResponse, ServiceError> {
    let app = &state.app;
    let mut jobs = Vec::with_capacity(body.keys.len());
    for (index, key) in body.keys.iter().enumerate() {
        if key.is_empty() || key.len() > crate::spool::job::MAX_KEY_BYTES {
            return Err(ServiceError::InvalidJob {
                index,
                reason: "key is empty or too long".to_owned(),
            });
        }
        if is_derived_key(key, &app.derived_prefix) {
            return Err(ServiceError::DerivedKey {
                index,
                key: key.clone(),
                prefix: app.derived_prefix.clone(),
            });
        }
        jobs.push(Job::forced(
            Origin::Reprocess,
            &app.source_bucket,
            key,
            None,
        ));
    }
    app.readiness
        .scratch_room()
        .map_err(ServiceError::ScratchFull)?;
    let accepted: JobsAccepted = admit(app, jobs).await?;
    Ok(HttpResponse::Accepted().json(accepted))
}

async fn reconcile(
    state: web::Data<AdminState>,
    body: Option<web::Json<ReconcileRequest>>,
) -> Result<HttpResponse, ServiceError> {
    if state.reconciling.swap(true, Ordering::SeqCst) {
        return Err(ServiceError::ReconcileRunning);
    }
    let prefix = body.and_then(|b| b.into_inner().prefix).unwrap_or_default();
    let started_at = crate::spool::job::now_rfc3339();
    state.set_reconcile(ReconcileState {
        started_at: started_at.clone(),
        running: true,
        report: None,
        error: None,
    });
    let runner = state.clone().into_inner();
    let mut task = state.app.runtime.spawn(async move {
        let result = run_reconcile(&runner, &prefix).await;
        runner.set_reconcile(ReconcileState {
            started_at,
            running: false,
            report: result.as_ref().ok().cloned(),
            error: result.as_ref().err().map(ToString::to_string),
        });
        runner.reconciling.store(false, Ordering::SeqCst);
        match &result {
            Ok(report) => tracing::info!(
                prefix = report.prefix,
                listed = report.listed,
                enqueued = report.enqueued,
                up_to_date = report.up_to_date,
                complete = report.complete,
                "reconcile finished"
            ),
            Err(e) => {
                tracing::error!(error = %crate::error_chain::error_chain(e), "reconcile failed");
            }
        }
        result
    });
    match tokio::time::timeout(RECONCILE_WAIT, &mut task).await {
        Ok(Ok(Ok(report))) => Ok(HttpResponse::Ok().json(ReconcileAnswer {
            running: false,
            report: Some(report),
        })),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(e)) => Err(ServiceError::Internal(e.to_string())),
        Err(_) => Ok(HttpResponse::Accepted().json(ReconcileAnswer {
            running: true,
            report: None,
        })),
    }
}

/// Lists the source bucket under `prefix` and enqueues every object whose record is
/// missing, failed, pending without a job, deleted, of another recipe version, or of
/// another ETag.
async fn run_reconcile(state: &AdminState, prefix: &str) -> Result<ReconcileReport, ServiceError> {
    let app = &state.app;
    let recipe_version = state.recipe_version();
    let listed = state
        .ctx
        .s3
        .list(&app.source_bucket, prefix, usize::MAX)
        .await
        .map_err(|e| ServiceError::Internal(crate::error_chain::error_chain(&e)))?;
    let mut report = ReconcileReport {
        prefix: prefix.to_owned(),
        complete: true,
        ..ReconcileReport::default()
    };
    let sources: Vec<_> = listed
        .into_iter()
        .filter(|o| !is_derived_key(&o.key, &app.derived_prefix))
        .collect();
    report.listed = sources.len() as u64;
    for chunk in sources.chunks(RECONCILE_BATCH) {
        let keys: Vec<String> = chunk.iter().map(|o| o.key.clone()).collect();
        let records = state
            .ctx
            .records
            .summaries(&keys)
            .await
            .map_err(|e| ServiceError::Internal(crate::error_chain::error_chain(&e)))?;
        let mut jobs = Vec::new();
        for object in chunk {
            if app.queue.holds_source(&app.source_bucket, &object.key) {
                report.already_queued += 1;
                continue;
            }
            let reason = match records.get(&object.key) {
                None => Some("missing"),
                Some(record) => match record.status.as_deref() {
                    Some(STATUS_FAILED) => Some("failed"),
                    Some(STATUS_PENDING) => Some("stale-pending"),
                    Some(STATUS_DELETED) => Some("deleted"),
                    Some(STATUS_DONE)
                        if record.recipe_version.as_deref() != Some(&recipe_version) =>
                    {
                        Some("old-recipe")
                    }
                    Some(STATUS_DONE) if record.etag.is_some() && record.etag != object.etag => {
                        Some("changed")
                    }
                    Some(STATUS_DONE) => None,
                    _ => Some("missing"),
                },
            };
            match reason {
                None => report.up_to_date += 1,
                Some(reason) => {
                    *report.reasons.entry(reason.to_owned()).or_default() += 1;
                    jobs.push(Job::forced(
                        Origin::Reconcile,
                        &app.source_bucket,
                        &object.key,
                        object.etag.clone(),
                    ));
                }
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let count = jobs.len() as u64;
        match admit(app, jobs).await {
            Ok(_) => report.enqueued += count,
            Err(e @ (ServiceError::QueueFull(_) | ServiceError::ShuttingDown)) => {
                report.complete = false;
                report.stopped_because = Some(e.to_string());
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

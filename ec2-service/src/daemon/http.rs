//! The daemon's listeners: the public routes (`POST /v1/jobs`, `GET /healthz`,
//! `GET /readyz`, `GET /metrics`) and the actix system that serves them with the admin
//! routes, on its own thread.
//!
//! Connections are bounded: at most `[server] max_connections` open, the request head
//! within a few seconds, idle keep-alive connections closed. AWS calls (readiness) run on
//! the daemon's runtime, never on the actix workers.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use pipeline_contract::JOBS_PATH;

use super::health::{Condition, Readiness, Report};
use crate::admin::{self, AdminState};
use crate::http_error::ServiceError;
use crate::intake::accept::{Accept, post_jobs};
use crate::metrics::{Memory, Metrics};
use crate::spool::queue::Queue;
use crate::work::Context;

/// How long a client may take to send a request's head.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive connection stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the health, readiness and metrics routes (public and admin) read.
#[derive(Debug)]
pub struct Observed {
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub ctx: Arc<Context>,
    /// The daemon's runtime, where AWS calls run (the actix workers have their own).
    pub runtime: tokio::runtime::Handle,
}

impl Observed {
    pub fn condition(&self) -> Condition {
        Condition {
            accepting: self.queue.is_accepting(),
            parked: self.queue.parked(),
        }
    }

    /// The readiness report, computed on the daemon's runtime.
    pub async fn readiness(&self) -> Result<Report, ServiceError> {
        let readiness = self.readiness.clone();
        let condition = self.condition();
        self.runtime
            .spawn(async move { readiness.check(&condition).await })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    pub fn exposition(&self) -> String {
        self.metrics.exposition(
            self.queue.depth(),
            self.queue.is_accepting(),
            Memory {
                reserved_bytes: self.ctx.pool.reserved_bytes(),
                budget_bytes: self.ctx.pool.budget_bytes(),
            },
        )
    }
}

/// The public routes (`POST /v1/jobs` only when jobs arrive over HTTP).
pub fn routes(config: &mut web::ServiceConfig, with_jobs: bool) {
    if with_jobs {
        config.route(JOBS_PATH, web::post().to(post_jobs));
    }
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn readyz(state: web::Data<Observed>) -> Result<HttpResponse, ServiceError> {
    let report = state.readiness().await?;
    if report.ready {
        Ok(HttpResponse::Ok().json(report))
    } else {
        Err(ServiceError::NotReady(report.reasons()))
    }
}

async fn metrics(state: web::Data<Observed>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.exposition())
}

/// The running servers: their handles, the thread they run on, and word when that thread
/// ends (which, before a shutdown, means the HTTP side of the daemon died).
#[derive(Debug)]
pub struct Servers {
    pub public: ServerHandle,
    pub admin: ServerHandle,
    pub thread: std::thread::JoinHandle<()>,
    pub ended: tokio::sync::oneshot::Receiver<()>,
}

/// How the public listener is served.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub workers: usize,
    pub max_connections: usize,
    /// Whether `POST /v1/jobs` is served (not in fleet mode, where jobs come from SQS).
    pub with_jobs: bool,
}

/// Starts the actix system on its own thread with both listeners.
pub fn start_http(
    accept: Arc<Accept>,
    observed: Arc<Observed>,
    admin_state: Arc<AdminState>,
    public: TcpListener,
    admin_listener: TcpListener,
    limits: Limits,
) -> std::io::Result<Servers> {
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = tx.clone();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("http".to_owned())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            let result: std::io::Result<()> = system.block_on(async move {
                let accept = web::Data::from(accept);
                let observed = web::Data::from(observed);
                let admin_state = web::Data::from(admin_state);
                let per_worker = limits
                    .max_connections
                    .div_ceil(limits.workers.max(1))
                    .max(1);
                let public = HttpServer::new(move || {
                    App::new()
                        .app_data(accept.clone())
                        .app_data(observed.clone())
                        .configure(|c| routes(c, limits.with_jobs))
                })
                .workers(limits.workers)
                .max_connections(per_worker)
                .client_request_timeout(REQUEST_HEAD_TIMEOUT)
                .keep_alive(KEEP_ALIVE)
                .disable_signals()
                .shutdown_timeout(5)
                .listen(public)?
                .run();
                let admin = HttpServer::new(move || {
                    App::new()
                        .app_data(admin_state.clone())
                        .app_data(web::JsonConfig::default().error_handler(|e, _| {
                            ServiceError::MalformedBody(e.to_string()).into()
                        }))
                        .configure(admin::routes)
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(admin_listener)?
                .run();
                let (public_handle, admin_handle) = (public.handle(), admin.handle());
                let _ = tx.send(Ok((public_handle.clone(), admin_handle.clone())));
                if let Some(after) = crate::faults::http_exit_after() {
                    let handle = public_handle.clone();
                    actix_web::rt::spawn(async move {
                        actix_web::rt::time::sleep(after).await;
                        handle.stop(false).await;
                    });
                }
                // Either server ending ends the thread (and the other server with it).
                tokio::select! {
                    a = public => {
                        admin_handle.stop(false).await;
                        a
                    }
                    b = admin => {
                        public_handle.stop(false).await;
                        b
                    }
                }
            });
            if let Err(e) = result {
                let _ = failed.send(Err(e));
            }
            let _ = ended_tx.send(());
        })?;
    match rx.recv() {
        Ok(Ok((public, admin))) => Ok(Servers {
            public,
            admin,
            thread,
            ended,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other(
            "the HTTP thread ended before starting",
        )),
    }
}

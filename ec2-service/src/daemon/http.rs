//! The daemon's listeners: the public routes (`POST /v1/jobs`, `GET /healthz`,
//! `GET /readyz`, `GET /metrics`) and the actix system that serves them with the admin
//! routes, on its own thread.
//!
//! AWS calls (readiness) run on the daemon's runtime, never on the actix workers.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use pipeline_contract::JOBS_PATH;

use crate::admin::{self, AdminState};
use crate::http_error::ServiceError;
use crate::intake::accept::{AppState, post_jobs};

/// The public routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(JOBS_PATH, web::post().to(post_jobs))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ServiceError> {
    let report = readiness(&state).await?;
    if report.ready {
        Ok(HttpResponse::Ok().json(report))
    } else {
        Err(ServiceError::NotReady(report.reasons()))
    }
}

/// The readiness report, computed on the daemon's runtime.
pub async fn readiness(state: &AppState) -> Result<crate::daemon::health::Report, ServiceError> {
    let readiness = state.readiness.clone();
    let accepting = state.queue.is_accepting();
    state
        .runtime
        .spawn(async move { readiness.check(accepting).await })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(
            state
                .metrics
                .exposition(state.queue.depth(), state.queue.is_accepting()),
        )
}

pub type Servers = (ServerHandle, ServerHandle, std::thread::JoinHandle<()>);

/// Starts the actix system on its own thread with both listeners.
pub fn start_http(
    app: Arc<AppState>,
    admin_state: Arc<AdminState>,
    public: TcpListener,
    admin_listener: TcpListener,
    workers: usize,
) -> std::io::Result<Servers> {
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = tx.clone();
    let thread = std::thread::Builder::new()
        .name("http".to_owned())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            let result: std::io::Result<()> = system.block_on(async move {
                let app = web::Data::from(app);
                let admin_state = web::Data::from(admin_state);
                let public =
                    HttpServer::new(move || App::new().app_data(app.clone()).configure(routes))
                        .workers(workers)
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
                let _ = tx.send(Ok((public.handle(), admin.handle())));
                let (a, b) = tokio::join!(public, admin);
                a.and(b)
            });
            if let Err(e) = result {
                let _ = failed.send(Err(e));
            }
        })?;
    match rx.recv() {
        Ok(Ok((public, admin))) => Ok((public, admin, thread)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other(
            "the HTTP thread ended before starting",
        )),
    }
}

//! `ec2-service serve`: builds everything once from the configuration, resumes the stored
//! jobs, serves, and handles the process's life under systemd (READY, watchdog, SIGHUP
//! reload, SIGTERM drain).
//!
//! Threads: a tokio runtime (AWS calls, the dispatcher and the workers' I/O), a rayon pool
//! (rendering, see [`render`](crate::render)), and one thread running the actix system with
//! the public and the admin listeners.

pub mod health;
pub mod http;
pub mod systemd;
pub mod telemetry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::admin::AdminState;
use crate::aws::records::Records;
use crate::aws::s3::S3;
use crate::error_chain::error_chain;
use crate::intake::accept::AppState;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::spool::files::JobFiles;
use crate::spool::queue::Queue;
use crate::work::render_pool::{RenderPool, RenderSettings};
use crate::work::{self, Context};
use health::Readiness;
use systemd::Notifier;
use telemetry::LogHandle;

/// Exit status for a bad configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit status when the scratch directory cannot be used (EX_CANTCREAT).
pub const EXIT_CANTCREAT: i32 = 73;
/// Exit status when a listener cannot be bound or a thread started (EX_OSERR).
pub const EXIT_OSERR: i32 = 71;

/// Runs the daemon until SIGTERM or SIGINT; returns the process exit status.
pub fn serve(config: Option<&Path>) -> i32 {
    let settings = match Settings::load_for_cli(config)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.validate_for_serve()
                .map(|()| s)
                .map_err(|e| format!("invalid configuration: {e}"))
        }) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("ec2-service: {message}");
            return EXIT_USAGE;
        }
    };
    let watermark = match settings.watermark.prepare() {
        Ok(watermark) => watermark,
        Err(e) => {
            eprintln!("ec2-service: {e}");
            return EXIT_USAGE;
        }
    };
    let log = telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ec2-service-io")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return EXIT_OSERR;
        }
    };
    let config = config.map(Path::to_owned);
    let status = runtime.block_on(run(settings, config, watermark, log));
    // Jobs abandoned at the end of the drain stay stored; do not wait for their tasks.
    runtime.shutdown_timeout(Duration::from_secs(2));
    status
}

async fn run(
    settings: Settings,
    config: Option<PathBuf>,
    watermark: Option<crate::pipeline::Watermark>,
    log: Option<LogHandle>,
) -> i32 {
    let started = Instant::now();
    let notifier = Arc::new(Notifier::from_env());

    let scratch = settings.scratch.dir.clone();
    let opened = tokio::task::spawn_blocking(move || JobFiles::open(&scratch)).await;
    let (store, resumed, unreadable) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            tracing::error!(error = %error_chain(&e), "cannot open the scratch directory");
            return EXIT_CANTCREAT;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the scratch directory");
            return EXIT_CANTCREAT;
        }
    };
    for bad in &unreadable {
        tracing::error!(path = %bad.path.display(), reason = %bad.reason, "a stored job cannot be read; it is kept aside and skipped");
    }

    let sdk = crate::aws::sdk_config(&settings.aws).await;
    let aws = &settings.aws;
    let s3 = S3::new(
        crate::aws::s3_client(&sdk, aws),
        Duration::from_millis(aws.attempt_timeout_ms),
    );
    let records = Records::new(crate::aws::dynamodb_client(&sdk), &aws.table);
    let resumed_count = resumed.len();
    let queue = Arc::new(Queue::new(settings.server.queue_capacity, resumed));
    let pool = match RenderPool::new(
        settings.render_threads(),
        settings.server.memory_budget_bytes,
    ) {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the rendering pool");
            return EXIT_OSERR;
        }
    };
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::new(
        s3.clone(),
        records.clone(),
        aws.source_bucket.clone(),
        aws.output_bucket.clone(),
        settings.scratch.dir.clone(),
        settings.scratch.min_free_bytes,
    ));
    let ctx = Arc::new(Context {
        queue: queue.clone(),
        files: store.clone(),
        s3,
        records,
        pool,
        render: RwLock::new(Arc::new(RenderSettings {
            recipe: settings.recipe.clone(),
            limits: settings.limits.clone(),
            watermark,
        })),
        metrics: metrics.clone(),
        retry: settings.retry.clone(),
        output_bucket: aws.output_bucket.clone(),
        derived_prefix: aws.derived_prefix.clone(),
    });

    let bind = |what: &str, addr: &str| {
        TcpListener::bind(addr).map_err(|e| {
            tracing::error!(listen = addr, error = %e, "cannot listen for {what}");
        })
    };
    let Ok(public) = bind("jobs", &settings.server.listen) else {
        return EXIT_OSERR;
    };
    let Ok(admin_listener) = bind("the admin endpoints", &settings.admin.listen) else {
        return EXIT_OSERR;
    };
    // The addresses really bound (a configured port 0 becomes a real one).
    let listen = public
        .local_addr()
        .map_or_else(|_| settings.server.listen.clone(), |a| a.to_string());
    let admin_listen = admin_listener
        .local_addr()
        .map_or_else(|_| settings.admin.listen.clone(), |a| a.to_string());
    let app = Arc::new(AppState {
        keys: settings
            .signing
            .key_set()
            .expect("validated before the runtime started"),
        max_skew_secs: settings.signing.max_skew_secs,
        max_body_bytes: settings.server.max_body_bytes,
        source_bucket: aws.source_bucket.clone(),
        derived_prefix: aws.derived_prefix.clone(),
        queue: queue.clone(),
        files: store,
        metrics,
        readiness,
        runtime: tokio::runtime::Handle::current(),
        started,
        started_at: crate::spool::job::now_rfc3339(),
    });
    let admin_state = Arc::new(AdminState::new(app.clone(), ctx.clone()));
    let servers = match http::start_http(
        app.clone(),
        admin_state,
        public,
        admin_listener,
        settings.server.http_workers,
    ) {
        Ok(servers) => servers,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP servers");
            return EXIT_OSERR;
        }
    };

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let drain = Duration::from_secs(settings.server.drain_secs);
    let dispatcher = tokio::spawn(work::dispatch::dispatch(
        ctx.clone(),
        settings.concurrency(),
        drain,
        stopped,
    ));

    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut term), Ok(mut interrupt), Ok(mut hangup)) = signals else {
        tracing::error!("cannot install the signal handlers");
        return EXIT_OSERR;
    };

    let summary = format!(
        "serving on {listen} (admin {admin_listen}), {resumed_count} jobs resumed, recipe {}",
        settings.recipe.version
    );
    tracing::info!(
        listen,
        admin = admin_listen,
        resumed = resumed_count,
        concurrency = settings.concurrency(),
        render_threads = settings.render_threads(),
        queue_capacity = settings.server.queue_capacity,
        recipe = settings.recipe.version,
        version = env!("CARGO_PKG_VERSION"),
        "ready"
    );
    notifier.ready(&summary);
    if let Some(every) = notifier.watchdog_interval() {
        let notifier = notifier.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                // A runtime stuck enough to miss this tick gets the daemon restarted.
                let _ = queue.depth();
                notifier.watchdog();
            }
        });
    }

    let mut current = settings;
    let reason = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => {
                current = reload(config.as_deref(), current, &ctx, log.as_ref(), &notifier);
            }
        }
    };

    let depth = queue.depth();
    tracing::info!(
        signal = reason,
        in_flight = depth.in_flight,
        waiting = depth.waiting,
        drain_secs = current.server.drain_secs,
        "draining: no new jobs; finishing those in flight"
    );
    notifier.stopping(&format!(
        "draining {} jobs in flight ({} waiting stay stored)",
        depth.in_flight, depth.waiting
    ));
    queue.stop_accepting();
    let _ = stop.send(true);
    queue.stop_dispatching();
    let (public, admin, thread) = servers;
    let stop_public = public.stop(true);
    let abandoned = dispatcher.await.unwrap_or(0);
    stop_public.await;
    admin.stop(false).await;
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    let left = queue.depth();
    tracing::info!(
        abandoned,
        stored = left.waiting + left.in_flight,
        "stopped; unfinished jobs stay stored for the next start"
    );
    0
}

/// SIGHUP: re-reads the configuration; the recipe, limits, watermark and log level take
/// effect for the jobs that start from now on. Other sections need a restart.
fn reload(
    config: Option<&Path>,
    current: Settings,
    ctx: &Context,
    log: Option<&LogHandle>,
    notifier: &Notifier,
) -> Settings {
    let loaded = Settings::load_for_cli(config)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.watermark
                .prepare()
                .map(|w| (s, w))
                .map_err(|e| e.to_string())
        });
    let (new, watermark) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the current configuration");
            return current;
        }
    };
    ctx.set_render_settings(RenderSettings {
        recipe: new.recipe.clone(),
        limits: new.limits.clone(),
        watermark,
    });
    if let Some(log) = log
        && let Err(e) = log.set_level(&new.log.level)
    {
        tracing::error!(error = %e, level = new.log.level, "cannot change the log level");
    }
    let restart_needed: Vec<&str> = [
        ("server", current.server != new.server),
        ("admin", current.admin != new.admin),
        ("scratch", current.scratch != new.scratch),
        ("aws", current.aws != new.aws),
        ("signing", current.signing != new.signing),
        ("retry", current.retry != new.retry),
        ("log.format", current.log.format != new.log.format),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect();
    if !restart_needed.is_empty() {
        tracing::warn!(
            sections = restart_needed.join(", "),
            "these changes take effect only after a restart"
        );
    }
    tracing::info!(
        recipe = new.recipe.version,
        variants = new.recipe.variants.len(),
        log_level = new.log.level,
        "configuration reloaded"
    );
    notifier.status(&format!("serving; reloaded recipe {}", new.recipe.version));
    // Keep the sections that did not take effect, so the next reload compares with what
    // is really in force.
    Settings {
        recipe: new.recipe,
        limits: new.limits,
        watermark: new.watermark,
        log: crate::settings::LogSettings {
            level: new.log.level,
            format: current.log.format,
        },
        ..current
    }
}

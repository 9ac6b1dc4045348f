//! `ec2-service serve`: builds everything once from the configuration, resumes the stored
//! jobs, serves, and handles the process's life under systemd (READY, a watchdog pinged
//! only while every part is alive ([`supervise`]), SIGHUP [`reload`], SIGTERM drain). A
//! part that dies (the HTTP server, the dispatcher) makes the daemon exit 70, and so does a
//! shutdown after a job panicked: systemd sees the failure.
//!
//! Threads: a tokio runtime (AWS calls, the dispatcher and the workers' I/O), a rayon pool
//! (rendering, see [`render_pool`](crate::work::render_pool)), and one thread running the
//! actix system with the public and the admin listeners ([`http`]).

pub mod health;
pub mod http;
pub mod reload;
pub mod supervise;
pub mod systemd;
pub mod telemetry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::admin::AdminState;
use crate::admin::reconcile::FleetQueue;
use crate::aws::cloudwatch::Publisher;
use crate::aws::records::Records;
use crate::aws::s3::S3;
use crate::error_chain::error_chain;
use crate::intake::Intake;
use crate::intake::accept::Accept;
use crate::intake::sqs::{Messages, SqsIntake, keep_invisible, max_receive_count};
use crate::metrics::Metrics;
use crate::settings::{IntakeMode, Settings};
use crate::spool::files::JobFiles;
use crate::spool::queue::Queue;
use crate::work::render_pool::{RenderPool, RenderSettings};
use crate::work::{self, Context};
use health::{Readiness, ScratchSpace};
use systemd::Notifier;
use telemetry::LogHandle;

/// Exit status for a bad configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit status when the scratch directory cannot be used (EX_CANTCREAT).
pub const EXIT_CANTCREAT: i32 = 73;
/// Exit status when a listener cannot be bound or a thread started (EX_OSERR).
pub const EXIT_OSERR: i32 = 71;
/// Exit status when a part of the daemon died or a job panicked (EX_SOFTWARE).
pub const EXIT_SOFTWARE: i32 = 70;

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
    let (files, resumed, unreadable) = match opened {
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
    let scratch = ScratchSpace {
        dir: settings.scratch.dir.clone(),
        min_free_bytes: settings.scratch.min_free_bytes,
    };
    let readiness = Arc::new(Readiness::new(
        s3.clone(),
        records.clone(),
        aws.source_bucket.clone(),
        aws.output_bucket.clone(),
        scratch.clone(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let fleet = settings.intake.mode == IntakeMode::Sqs;
    let sqs = fleet.then(|| crate::aws::sqs_client(&sdk));
    let visibility = Duration::from_secs(u64::from(settings.intake.visibility_timeout_secs));
    let messages = sqs.as_ref().map(|client| {
        Arc::new(Messages::new(
            client.clone(),
            settings.intake.queue_url.clone(),
            visibility,
        ))
    });
    let ctx = Arc::new(Context {
        queue: queue.clone(),
        files: files.clone(),
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
        variant_prefix: aws.variant_prefix.clone(),
        public_base_url: aws.public_base_url.clone(),
        stop: stopped.clone(),
        messages: messages.clone(),
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
    let Ok(public_addr) = public.local_addr() else {
        return EXIT_OSERR;
    };
    // The addresses really bound (a configured port 0 becomes a real one).
    let listen = public_addr.to_string();
    let admin_listen = admin_listener
        .local_addr()
        .map_or_else(|_| settings.admin.listen.clone(), |a| a.to_string());
    let intake = Arc::new(Intake {
        rules: settings.rules(),
        queue: queue.clone(),
        files,
        metrics: metrics.clone(),
        scratch,
    });
    let accept = Arc::new(Accept::new(
        intake.clone(),
        settings
            .signing
            .key_set()
            .expect("validated before the runtime started"),
        settings.signing.max_skew_secs,
        settings.server.max_body_bytes,
        Duration::from_secs(settings.server.body_timeout_secs),
        settings.server.max_bodies_in_memory,
    ));
    let observed = Arc::new(http::Observed {
        queue: queue.clone(),
        metrics,
        readiness,
        ctx: ctx.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let admin_state = Arc::new(AdminState::new(
        intake.clone(),
        observed.clone(),
        started,
        crate::spool::job::now_rfc3339(),
        settings.admin.reconcile_page_size as i32,
        sqs.as_ref().map(|client| FleetQueue {
            client: client.clone(),
            queue_url: settings.intake.queue_url.clone(),
            holder: holder_name(),
        }),
    ));
    let mut servers = match http::start_http(
        accept,
        observed,
        admin_state,
        public,
        admin_listener,
        http::Limits {
            workers: settings.server.http_workers,
            max_connections: settings.server.max_connections,
            with_jobs: !fleet,
        },
    ) {
        Ok(servers) => servers,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP servers");
            return EXIT_OSERR;
        }
    };

    let drain = Duration::from_secs(settings.server.drain_secs);
    let dispatcher_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut dispatcher = {
        let ended = dispatcher_ended.clone();
        let ctx = ctx.clone();
        let concurrency = settings.concurrency();
        tokio::spawn(async move {
            let result = work::dispatch::dispatch(ctx, concurrency, drain).await;
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
            result
        })
    };

    let receiving = match (&sqs, &messages) {
        (Some(client), Some(messages)) => {
            let max_receive_count = match max_receive_count(client, &settings.intake.queue_url)
                .await
            {
                Ok(max) => max,
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "cannot read the queue's redrive policy; last deliveries are not recorded");
                    None
                }
            };
            if max_receive_count.is_none() {
                tracing::warn!(
                    queue = settings.intake.queue_url,
                    "the queue has no redrive policy (DLQ): a message that keeps failing comes back for ever"
                );
            }
            let filter = pipeline_contract::Filter::new(
                settings.rules(),
                settings.intake.source_prefix.clone(),
                settings.intake.suffixes(),
            );
            let receiver = SqsIntake {
                client: client.clone(),
                queue_url: settings.intake.queue_url.clone(),
                filter,
                wait_secs: settings.intake.wait_secs as i32,
                visibility,
                concurrency: settings.concurrency(),
                intake: intake.clone(),
                messages: messages.clone(),
            };
            let every = (visibility / 4).max(Duration::from_secs(1));
            tokio::spawn(keep_invisible(messages.clone(), every, stopped.clone()));
            Some(tokio::spawn({
                let stopped = stopped.clone();
                async move { receiver.run(max_receive_count, stopped).await }
            }))
        }
        _ => None,
    };

    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut term), Ok(mut interrupt), Ok(mut hangup)) = signals else {
        tracing::error!("cannot install the signal handlers");
        return EXIT_OSERR;
    };

    let summary = if fleet {
        format!(
            "serving from SQS (health on {listen}, admin {admin_listen}), {resumed_count} jobs resumed, recipe {}",
            settings.recipe.version
        )
    } else {
        format!(
            "serving on {listen} (admin {admin_listen}), {resumed_count} jobs resumed, recipe {}",
            settings.recipe.version
        )
    };
    tracing::info!(
        listen,
        admin = admin_listen,
        resumed = resumed_count,
        concurrency = settings.concurrency(),
        render_threads = settings.render_threads(),
        queue_capacity = settings.server.queue_capacity,
        intake = if fleet { "sqs" } else { "http" },
        recipe = settings.recipe.version,
        version = env!("CARGO_PKG_VERSION"),
        "ready"
    );
    // The job metrics to CloudWatch ([metrics] namespace set), until the daemon has drained.
    let publisher = settings.metrics.is_enabled().then(|| {
        Publisher::new(
            crate::aws::cloudwatch_client(&sdk),
            &settings.metrics,
            queue.clone(),
            ctx.metrics.clone(),
            settings.scratch.dir.clone(),
        )
        .spawn()
    });
    notifier.ready(&summary);
    if let Some(every) = notifier.watchdog_interval() {
        let parts = supervise::Parts {
            public: public_addr,
            dispatcher_ended: dispatcher_ended.clone(),
        };
        tokio::spawn(supervise::watchdog(notifier.clone(), every, parts));
    }

    let mut current = settings;
    let mut failed = false;
    let mut dispatched = None;
    let reason = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => {
                current = reload::reload(config.as_deref(), current, &ctx, log.as_ref(), &notifier);
            }
            _ = &mut servers.ended => {
                tracing::error!("the HTTP server stopped: no jobs can arrive; exiting so that systemd restarts the daemon");
                failed = true;
                break "the HTTP server died";
            }
            ended = &mut dispatcher => {
                tracing::error!(result = ?ended, "the dispatcher stopped: no job can start; exiting so that systemd restarts the daemon");
                failed = true;
                dispatched = Some(ended.unwrap_or_default());
                break "the dispatcher died";
            }
        }
    };

    let depth = queue.depth();
    tracing::info!(
        reason,
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
    if let Some(receiving) = receiving {
        let _ = receiving.await;
    }
    if let Some(messages) = &messages {
        // Jobs that have not started go back at once: another daemon takes them now.
        for job in queue
            .not_started()
            .into_iter()
            .filter(|j| j.message.is_some())
        {
            messages.job_again(&job, Duration::ZERO).await;
            queue.forget(&job);
        }
    }
    let stop_public = servers.public.stop(true);
    let dispatched = match dispatched {
        Some(dispatched) => dispatched,
        None => dispatcher.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the dispatcher failed while draining");
            failed = true;
            work::dispatch::Dispatched::default()
        }),
    };
    if let Some(messages) = &messages {
        let handed_back = messages.hand_back_all().await;
        if handed_back > 0 {
            tracing::info!(
                handed_back,
                "messages of unfinished jobs handed back to the queue"
            );
        }
    }
    if let Some(publisher) = publisher {
        publisher.finish().await;
    }
    stop_public.await;
    servers.admin.stop(false).await;
    let thread = servers.thread;
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    let left = queue.depth();
    tracing::info!(
        abandoned = dispatched.abandoned,
        panicked = dispatched.panicked,
        stored = left.waiting + left.in_flight + left.parked,
        "stopped; unfinished jobs stay stored for the next start"
    );
    if dispatched.panicked > 0 {
        tracing::error!(
            panicked = dispatched.panicked,
            "job tasks panicked while the daemon ran (a bug: please report it with the log)"
        );
        failed = true;
    }
    if failed { EXIT_SOFTWARE } else { 0 }
}

/// This box, as a reconcile lease names it: the host name and the process.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}/{}", std::process::id())
}

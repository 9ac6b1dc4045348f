//! The operator's view: the CLI on the box, health, readiness, metrics, reload, and
//! configuration errors.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, binary, config_text};
use crate::support::fixture::{Fixture, s, variant_key};
use crate::support::moto::moto;
use crate::support::photo;

const WAIT: Duration = Duration::from_secs(30);

/// Runs a CLI command; returns its stdout, checking it succeeded quickly.
fn cli(daemon: &Daemon, args: &[&str]) -> String {
    let started = Instant::now();
    let output = daemon.cli(args);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // A second on an idle box; the tests share two cores with other tests.
    assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
    stdout
}

#[test]
fn reconcile_finds_an_object_that_never_had_an_event() {
    let fx = Fixture::new("reconcile");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    fx.put_source("uploads/evented.jpg", &photo(96, 64));
    daemon.submit(&[fx.put_job("uploads/evented.jpg", None, None)]);
    fx.wait_status("uploads/evented.jpg", "DONE", WAIT);
    // Uploaded while the notification was broken: no event ever came.
    fx.put_source("uploads/no event.jpg", &photo(96, 64));
    fx.put_source("elsewhere/other.jpg", &photo(96, 64));

    let out = cli(&daemon, &["reconcile", "--prefix", "uploads/"]);
    assert!(
        out.contains(
            "listed 2 sources under \"uploads/\" in 1 page(s): 1 up to date, 1 enqueued (missing 1)"
        ),
        "{out}"
    );
    let record = fx.wait_status("uploads/no event.jpg", "DONE", WAIT);
    assert_eq!(s(&record, "Origin"), "reconcile");
    assert!(
        fx.record("elsewhere/other.jpg").is_none(),
        "outside the prefix"
    );

    let out = cli(&daemon, &["reconcile"]);
    assert!(out.contains("listed 3 sources"), "{out}");
    assert!(out.contains("1 enqueued (missing 1)"), "{out}");
    fx.wait_status("elsewhere/other.jpg", "DONE", WAIT);
    let out = cli(&daemon, &["reconcile"]);
    assert!(out.contains("3 up to date, 0 enqueued"), "{out}");
}

#[test]
fn reconcile_reads_the_listing_one_page_at_a_time() {
    let fx = Fixture::new("reconcile-pages");
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[("EC2_SERVICE__ADMIN__RECONCILE_PAGE_SIZE", "5")],
    );
    for i in 0..23 {
        fx.put_source(&format!("uploads/p{i:02}.jpg"), &photo(32, 24));
    }
    let answer = daemon.admin_post("/admin/reconcile", br#"{"prefix":"uploads/"}"#);
    let report = if answer["running"] == true {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = daemon.admin_get("/admin/status");
            if status["reconcile"]["running"] == false {
                break status["reconcile"]["report"].clone();
            }
            assert!(Instant::now() < deadline, "reconcile finishes");
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        answer["report"].clone()
    };
    assert_eq!(report["listed"], 23, "{report}");
    assert_eq!(report["enqueued"], 23, "{report}");
    // Five pages of at most five: never more than one page in memory.
    assert_eq!(report["pages"], 5, "{report}");
    assert_eq!(report["largest_page"], 5, "{report}");
    for i in 0..23 {
        fx.wait_status(&format!("uploads/p{i:02}.jpg"), "DONE", WAIT);
    }
}

#[test]
fn status_jobs_and_reprocess_answer_quickly_and_readably() {
    let fx = Fixture::new("cli");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    fx.put_source("good.jpg", &photo(96, 64));
    daemon.submit(&[
        fx.put_job("good.jpg", None, None),
        fx.put_job("missing.jpg", None, None),
    ]);
    fx.wait_status("good.jpg", "DONE", WAIT);
    fx.wait_status("missing.jpg", "FAILED", WAIT);

    let out = cli(&daemon, &["status"]);
    assert!(out.contains("recipe e2e-1, accepting jobs"), "{out}");
    assert!(out.contains("ready:     yes"), "{out}");
    assert!(
        out.contains("queue:     0 waiting (0 waiting to retry), 0 in flight"),
        "{out}"
    );
    assert!(
        out.contains("1 done, 1 failed, 0 deleted, 0 skipped"),
        "{out}"
    );
    assert!(out.contains("source-not-found  missing.jpg"), "{out}");

    let out = cli(&daemon, &["jobs"]);
    assert!(out.contains("no unfinished jobs"), "{out}");
    assert!(out.contains("DONE") && out.contains("good.jpg"), "{out}");
    let out = cli(&daemon, &["jobs", "--failed"]);
    assert!(
        out.contains("missing.jpg") && !out.contains("good.jpg"),
        "{out}"
    );

    let before = s(&fx.record("good.jpg").unwrap(), "ProcessedAt");
    let out = cli(&daemon, &["reprocess", "good.jpg"]);
    assert!(out.starts_with("queued 1 jobs:"), "{out}");
    let record = fx.wait_until("good.jpg", WAIT, |r| {
        s(r, "Status") == "DONE" && s(r, "ProcessedAt") != before
    });
    assert_eq!(s(&record, "Origin"), "reprocess");

    // Without a daemon to talk to, the answer says so.
    let output = Command::new(binary())
        .env_clear()
        .env("EC2_SERVICE__ADMIN__LISTEN", "127.0.0.1:9")
        .arg("status")
        .arg("--config")
        .arg(&daemon.config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the daemon"));
}

#[test]
fn health_readiness_and_metrics_reflect_what_happened() {
    let fx = Fixture::new("metrics");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let health = daemon.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let ready = daemon.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    for check in ["scratch", "s3-source", "s3-output", "dynamodb"] {
        assert!(ready.text().contains(check), "{}", ready.text());
    }

    let bytes = photo(300, 200);
    fx.put_source("ok.jpg", &bytes);
    fx.put_source("bad.jpg", b"not an image");
    daemon.submit(&[
        fx.put_job("ok.jpg", None, None),
        fx.put_job("bad.jpg", None, None),
    ]);
    fx.wait_status("ok.jpg", "DONE", WAIT);
    fx.wait_status("bad.jpg", "FAILED", WAIT);
    daemon.submit(&[fx.put_job("ok.jpg", None, None)]); // a duplicate delivery

    let metrics = daemon.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    daemon.wait_metric(
        "ec2_service_jobs_finished_total{status=\"SKIPPED\",code=\"\"}",
        1.0,
        WAIT,
    );
    let m = |series: &str| daemon.metric(series);
    assert_eq!(m("ec2_service_jobs_accepted_total"), 3.0);
    assert_eq!(
        m("ec2_service_jobs_finished_total{status=\"DONE\",code=\"\"}"),
        1.0
    );
    assert_eq!(
        m("ec2_service_jobs_finished_total{status=\"FAILED\",code=\"unsupported-format\"}"),
        1.0
    );
    assert_eq!(m("ec2_service_queue_depth"), 0.0);
    assert_eq!(m("ec2_service_jobs_in_flight"), 0.0);
    assert_eq!(m("ec2_service_bytes_in_total"), (bytes.len() + 12) as f64);
    assert!(m("ec2_service_bytes_out_total") > 0.0);
    for stage in ["download", "render", "upload"] {
        assert!(
            m(&format!(
                "ec2_service_stage_duration_seconds_count{{stage=\"{stage}\"}}"
            )) >= 1.0,
            "{stage}"
        );
    }
    assert_eq!(
        m("ec2_service_stage_duration_seconds_count{stage=\"record\"}"),
        3.0
    );
}

#[test]
fn sighup_reloads_the_recipe_and_the_log_level_without_dropping_jobs() {
    let fx = Fixture::new("reload");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    fx.put_source("a.jpg", &photo(96, 64));
    daemon.submit(&[fx.put_job("a.jpg", None, None)]);
    fx.wait_status("a.jpg", "DONE", WAIT);

    assert_eq!(fx.output_keys("variants/a.jpg/").len(), 2);
    // The new recipe drops the thumbnail.
    let text = config_text(&fx, &moto().endpoint(), "")
        .replace("version = \"e2e-1\"", "version = \"e2e-2\"")
        .replace(
            "[[recipe.variants]]\nname = \"thumb\"\nwidth = 128\nheight = 128\nfit = \"cover\"\nformat = \"webp\"\nquality = 70\n",
            "",
        )
        .replace("level = \"info,aws_config=warn\"", "level = \"debug,aws_config=warn,aws_smithy_runtime=info,aws_smithy_http_client=info,hyper_util=info,aws_runtime=info,actix_server=info\"");
    std::fs::write(&daemon.config, text).unwrap();
    daemon.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while daemon.events("configuration reloaded").is_empty() {
        assert!(Instant::now() < deadline, "no reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        daemon.events("configuration reloaded")[0]["recipe"],
        "e2e-2"
    );

    cli(&daemon, &["reprocess", "a.jpg"]);
    let record = fx.wait_until("a.jpg", WAIT, |r| {
        s(r, "RecipeVersion") == "e2e-2" && s(r, "Status") == "DONE"
    });
    // The old set goes right after the record points at the new one: wait for the line.
    let deadline = Instant::now() + WAIT;
    while daemon.events("job finished").len() < 2 {
        assert!(Instant::now() < deadline, "the reprocess finishes");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<String> = fx.output_keys("variants/a.jpg/");
    assert_eq!(
        left,
        [variant_key(&record, "large")],
        "the new render's variants only: the old set, thumbnail included, is removed"
    );
    let debug = daemon
        .logs()
        .iter()
        .any(|l| l.contains("\"level\":\"DEBUG\""));
    assert!(debug, "the new log level is in force");
    assert_eq!(daemon.get("/healthz").status, 200, "still serving");
}

#[test]
fn a_bad_configuration_exits_64_naming_the_key() {
    let fx = Fixture::new("badconfig");
    let config = fx.scratch.with_extension("toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let run = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&config, text).unwrap();
        let mut command = Command::new(binary());
        command.env_clear().args(["serve", "--config"]).arg(&config);
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let good = config_text(&fx, &moto().endpoint(), "");
    let keys = (
        "EC2_SERVICE__SIGNING__KEYS",
        "k:0123456789abcdef0123456789abcdef",
    );

    let (code, err) = run(&good.replace("concurrency = 2", "concurency = 2"), &[keys]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("concurency"), "{err}");
    let (code, err) = run(&good, &[keys, ("EC2_SERVICE__SERVER__LISTEN", "nowhere")]);
    assert_eq!(code, Some(64));
    assert!(err.contains("server.listen"), "{err}");
    let (code, err) = run(
        &good.replace(&format!("table = \"{}\"", fx.table), ""),
        &[keys],
    );
    assert_eq!(code, Some(64));
    assert!(err.contains("aws.table"), "{err}");
    let (code, err) = run(&good, &[]);
    assert_eq!(code, Some(64));
    assert!(err.contains("signing.keys"), "{err}");
    let (code, err) = run(&good, &[("EC2_SERVICE__SIGNING__KEYS", "k:s3cr3tvalue")]);
    assert_eq!(code, Some(64));
    assert!(
        err.contains("signing.keys") && !err.contains("s3cr3tvalue"),
        "no secret in {err}"
    );
}

//! Nothing accepted is lost: SIGKILL right after a 202, an S3 outage, SIGTERM drain.

use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, stored_jobs};
use crate::support::fixture::{Fixture, n, s};
use crate::support::moto::moto;
use crate::support::proxy::Proxy;
use crate::support::{heavy_photo, photo};

const WAIT: Duration = Duration::from_secs(30);

fn wait_no_stored_jobs(fx: &Fixture) {
    let deadline = Instant::now() + WAIT;
    while !stored_jobs(&fx.scratch).is_empty() {
        assert!(
            Instant::now() < deadline,
            "jobs still stored: {:?}",
            stored_jobs(&fx.scratch)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_job_accepted_right_before_a_sigkill_completes_after_the_restart() {
    let fx = Fixture::new("sigkill");
    // S3 unreachable: the accepted job cannot finish before the kill.
    let s3 = Proxy::start(moto().addr, false);
    let s3_env = [("EC2_SERVICE__AWS__S3_ENDPOINT_URL", s3.endpoint())];
    let env: Vec<(&str, &str)> = s3_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut daemon = Daemon::start(&fx, &moto().endpoint(), "", &env);
    fx.put_source("held.jpg", &photo(96, 64));
    let accepted = daemon.submit(&[fx.put_job("held.jpg", Some("01"), None)]);
    daemon.kill();
    assert_eq!(
        stored_jobs(&fx.scratch),
        [format!("{}.json", accepted.jobs[0].id.clone().unwrap())]
    );

    s3.set_up(true);
    let config = daemon.config.clone();
    drop(daemon);
    let daemon = Daemon::start_with(&fx, &config, &env);
    assert_eq!(daemon.events("ready")[0]["resumed"], 1);
    fx.wait_status("held.jpg", "DONE", WAIT);
    assert_eq!(fx.output_keys("variants/held.jpg/").len(), 2);
    wait_no_stored_jobs(&fx);

    // With the server up, killed while the job is being processed: still done once.
    let mut daemon = daemon;
    fx.put_source("racing.jpg", &photo(400, 300));
    daemon.submit(&[fx.put_job("racing.jpg", Some("01"), None)]);
    daemon.kill();
    drop(daemon);
    let _daemon = Daemon::start_with(&fx, &config, &env);
    fx.wait_status("racing.jpg", "DONE", WAIT);
    wait_no_stored_jobs(&fx);
}

#[test]
fn jobs_retry_through_an_s3_outage_and_complete_once_it_is_back() {
    let fx = Fixture::new("outage");
    let s3 = Proxy::start(moto().addr, true);
    let endpoint = s3.endpoint();
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[
            ("EC2_SERVICE__AWS__S3_ENDPOINT_URL", &endpoint),
            // Enough attempts (at most 400 ms apart) to outlast the outage.
            ("EC2_SERVICE__RETRY__MAX_ATTEMPTS", "40"),
        ],
    );
    let keys = ["outage-1.jpg", "outage-2.jpg"];
    for key in keys {
        fx.put_source(key, &photo(96, 64));
    }
    s3.set_up(false);
    daemon.submit(&keys.map(|k| fx.put_job(k, None, None)));
    daemon.wait_metric("ec2_service_job_retries_total", 4.0, WAIT);
    let jobs = daemon.admin_get("/admin/jobs?failed=true");
    let pending = jobs["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 2, "{jobs:#}");
    assert!(
        pending[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("s3-unavailable"),
        "{jobs:#}"
    );
    std::thread::sleep(Duration::from_millis(1100)); // past the readiness cache
    let ready = daemon.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("s3-source"), "{}", ready.text());

    s3.set_up(true);
    for key in keys {
        let record = fx.wait_status(key, "DONE", WAIT);
        assert!(n(&record, "Attempts") >= 2.0);
    }
    // Ready again once the cached answer (a second) has expired.
    let deadline = Instant::now() + WAIT;
    while daemon.get("/readyz").status != 200 {
        assert!(Instant::now() < deadline, "not ready again");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_no_stored_jobs(&fx);
}

#[test]
fn transient_failures_that_outlast_the_retries_end_failed_with_the_reason() {
    let fx = Fixture::new("exhausted");
    let s3 = Proxy::start(moto().addr, false);
    let endpoint = s3.endpoint();
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[
            ("EC2_SERVICE__AWS__S3_ENDPOINT_URL", &endpoint),
            ("EC2_SERVICE__RETRY__MAX_ATTEMPTS", "3"),
        ],
    );
    daemon.submit(&[fx.put_job("unreachable.jpg", None, None)]);
    let record = fx.wait_status("unreachable.jpg", "FAILED", WAIT);
    assert_eq!(s(&record, "ErrorCode"), "s3-unavailable");
    assert!(
        s(&record, "ErrorMessage").starts_with("gave up after 3 attempts"),
        "{record:?}"
    );
    assert_eq!(n(&record, "Attempts"), 3.0);
    let errors: Vec<_> = daemon
        .logs()
        .into_iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert_eq!(errors.len(), 1, "logged once at ERROR: {errors:#?}");
    assert!(
        errors[0].contains("HeadObject"),
        "with its cause: {}",
        errors[0]
    );
}

#[test]
fn sigterm_finishes_the_job_in_flight_and_leaves_the_rest_stored() {
    let fx = Fixture::new("drain");
    let env = [("EC2_SERVICE__SERVER__CONCURRENCY", "1")];
    let mut daemon = Daemon::start(&fx, &moto().endpoint(), "", &env);
    let keys = ["drain-1.jpg", "drain-2.jpg", "drain-3.jpg"];
    let heavy = heavy_photo(2400, 1800);
    for key in keys {
        fx.put_source(key, &heavy);
    }
    daemon.submit(&keys.map(|k| fx.put_job(k, None, None)));
    let deadline = Instant::now() + WAIT;
    let in_flight = loop {
        let jobs = daemon.admin_get("/admin/jobs");
        let busy = jobs["pending"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["state"] == "in-flight")
            .map(|j| j["key"].as_str().unwrap().to_owned());
        if let Some(key) = busy {
            break key;
        }
        assert!(Instant::now() < deadline, "no job went in flight");
        std::thread::sleep(Duration::from_millis(10));
    };
    daemon.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    let refused = ec2_service::cli::admin_client::request(
        daemon.addr,
        "POST",
        "/v1/jobs",
        &[],
        b"{}",
        Duration::from_secs(2),
    );
    // Refused, or the listener is already closed.
    if let Ok(response) = &refused {
        assert_eq!(response.status, 503, "{}", response.text());
    }
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        !daemon
            .events("draining: no new jobs; finishing those in flight")
            .is_empty()
    );

    assert_eq!(
        s(&fx.record(&in_flight).unwrap(), "Status"),
        "DONE",
        "the job in flight finished"
    );
    let done = keys
        .iter()
        .filter(|k| fx.record(k).is_some_and(|r| s(&r, "Status") == "DONE"))
        .count();
    let stored = stored_jobs(&fx.scratch).len();
    assert_eq!(done + stored, keys.len(), "every job is done or stored");
    assert!(stored >= 1, "the jobs not started stay stored");

    let config = daemon.config.clone();
    drop(daemon);
    let _daemon = Daemon::start_with(&fx, &config, &env);
    for key in keys {
        fx.wait_status(key, "DONE", WAIT);
    }
    wait_no_stored_jobs(&fx);
}

#[test]
fn systemd_is_told_ready_pinged_by_the_watchdog_and_told_stopping() {
    use std::os::unix::net::UnixDatagram;

    let fx = Fixture::new("notify");
    let path = fx.scratch.with_extension("sock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let manager = UnixDatagram::bind(&path).unwrap();
    manager.set_read_timeout(Some(WAIT)).unwrap();
    let socket = path.display().to_string();
    let mut daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", "200000")],
    );
    let mut buffer = [0u8; 1024];
    let mut receive = || {
        let n = manager.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    let first = receive();
    assert!(
        first.starts_with("READY=1\nSTATUS=serving on "),
        "{first:?}"
    );
    // WATCHDOG_USEC=200000: a ping every 100 ms.
    let started = Instant::now();
    assert_eq!(receive(), "WATCHDOG=1");
    assert_eq!(receive(), "WATCHDOG=1");
    assert!(started.elapsed() < Duration::from_secs(2));

    daemon.signal("TERM");
    let stopping = loop {
        let message = receive();
        if message != "WATCHDOG=1" {
            break message;
        }
    };
    assert!(
        stopping.starts_with("STOPPING=1\nSTATUS=draining"),
        "{stopping:?}"
    );
    assert!(daemon.wait(WAIT).success());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_dead_http_server_stops_the_watchdog_and_the_daemon_exits_70() {
    use std::os::unix::net::UnixDatagram;

    let fx = Fixture::new("http-dies");
    let path = fx.scratch.with_extension("sock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let manager = UnixDatagram::bind(&path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let socket = path.display().to_string();
    let mut daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[
            ("NOTIFY_SOCKET", &socket),
            ("WATCHDOG_USEC", "400000"),
            ("EC2_SERVICE_FAULTS", "http-exit-after-ms=1500"),
        ],
    );
    let mut buffer = [0u8; 1024];
    let mut pings_after = Vec::new();
    let started = Instant::now();
    while let Ok(n) = manager.recv(&mut buffer) {
        let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
        if message == "WATCHDOG=1" {
            pings_after.push(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let status = daemon.wait(WAIT);
    assert_eq!(
        status.code(),
        Some(70),
        "a dead part is a failure systemd sees"
    );
    assert!(!pings_after.is_empty(), "pinged while alive");
    assert!(
        pings_after
            .iter()
            .all(|at| *at < Duration::from_millis(2500)),
        "no watchdog ping once the HTTP server is dead: {pings_after:?}"
    );
    assert!(
        daemon
            .events("the HTTP server stopped: no jobs can arrive; exiting so that systemd restarts the daemon")
            .iter()
            .any(|e| e["level"] == "ERROR")
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_panicking_job_is_logged_its_slot_freed_and_the_shutdown_reports_it() {
    let fx = Fixture::new("panics");
    let mut daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[
            ("EC2_SERVICE__SERVER__CONCURRENCY", "1"),
            ("EC2_SERVICE__RETRY__MAX_ATTEMPTS", "2"),
            ("EC2_SERVICE_FAULTS", "panic@boom"),
        ],
    );
    fx.put_source("boom.jpg", &photo(64, 48));
    fx.put_source("fine.jpg", &photo(64, 48));
    daemon.submit(&[fx.put_job("boom.jpg", None, None)]);
    daemon.submit(&[fx.put_job("fine.jpg", None, None)]);
    // With one slot, the job after the panicking one runs only if the slot was freed.
    fx.wait_status("fine.jpg", "DONE", WAIT);
    daemon.wait_metric("ec2_service_jobs_parked", 1.0, WAIT);
    let panics = daemon.events("a job panicked; it will be retried");
    assert!(!panics.is_empty(), "logged");
    assert_eq!(panics[0]["level"], "ERROR");
    assert_eq!(panics[0]["key"], "boom.jpg");
    assert!(
        panics[0]["panic"]
            .as_str()
            .unwrap()
            .contains("injected fault")
    );
    assert_eq!(daemon.metric("ec2_service_job_panics_total"), 2.0);
    assert_eq!(
        stored_jobs(&fx.scratch).len(),
        1,
        "the panicking job stays stored"
    );
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait(WAIT).code(),
        Some(70),
        "not exit 0 after a panic"
    );
}

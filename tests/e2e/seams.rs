//! Where the parts meet: one refused job never sinks its neighbours, waiting for the
//! record store never spends the work's retries, a record that cannot be written parks its
//! job visibly, two jobs of one source never leave a stale result, replays cost nothing,
//! unauthenticated bodies are never held, and the memory budget covers the sources too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pipeline_contract::{AnswerStatus, JobAnswers, JobsRequest};

use crate::support::daemon::{Daemon, now, stored_jobs};
use crate::support::fixture::{Fixture, n, s, variant_key, variant_keys};
use crate::support::images::{decode, mean};
use crate::support::moto::moto;
use crate::support::photo;
use crate::support::proxy::Proxy;

const WAIT: Duration = Duration::from_secs(60);

/// A flat-coloured JPEG: its pixels say which upload a variant came from.
fn flat(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    use ec2_service::pipeline::{Layout, OutputFormat, Raster, encode::encode};
    let raster = Raster::filled(width, height, Layout::Rgb, &rgb);
    encode(&raster, OutputFormat::Jpeg, 92, [255, 255, 255]).unwrap()
}

#[test]
fn a_dynamodb_outage_does_not_spend_the_retries_of_the_work() {
    // DynamoDB and S3 each behind their own proxy. DynamoDB is away long enough for a
    // job to have been tried far more than max_attempts times; then S3 blips. Waiting for
    // the record store must not have used the budget that S3 blip needs.
    let fx = Fixture::new("ddb-outage");
    let ddb = Proxy::start(moto().addr, false);
    let s3 = Proxy::start(moto().addr, false);
    let daemon = Daemon::start(
        &fx,
        &ddb.endpoint(),
        "",
        &[
            ("EC2_SERVICE__AWS__S3_ENDPOINT_URL", s3.endpoint().as_str()),
            ("EC2_SERVICE__RETRY__MAX_ATTEMPTS", "4"),
            ("EC2_SERVICE__RETRY__BASE_DELAY_MS", "100"),
            ("EC2_SERVICE__RETRY__MAX_DELAY_MS", "300"),
            ("EC2_SERVICE__SERVER__CONCURRENCY", "4"),
        ],
    );
    let keys: Vec<String> = (0..20).map(|i| format!("outage/{i:02}.jpg")).collect();
    for key in &keys {
        fx.put_source(key, &photo(64, 48));
    }
    let jobs: Vec<_> = keys.iter().map(|k| fx.put_job(k, None, None)).collect();
    daemon.submit(&jobs);
    // About 15 waits each for the record store (0.1-0.3 s apart): more than 4 attempts.
    std::thread::sleep(Duration::from_secs(5));
    assert!(daemon.metric("ec2_service_record_waits_total") >= 40.0);
    // The record store comes back while S3 is still away: every job's work now fails once
    // or twice on S3, which its own budget of 4 attempts covers.
    ddb.set_up(true);
    std::thread::sleep(Duration::from_millis(400));
    s3.set_up(true);
    for key in &keys {
        let record = fx.wait_until(key, WAIT, |r| s(r, "Status") != "PENDING");
        assert_eq!(s(&record, "Status"), "DONE", "{key}: {record:#?}");
        assert!(n(&record, "Attempts") <= 4.0);
    }
}

#[test]
fn a_record_that_cannot_be_written_parks_its_job_visibly_until_a_reload() {
    let fx = Fixture::new("parked");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    fx.put_source("parked.jpg", &photo(64, 48));
    // The table is gone (deleted by mistake): no amount of waiting will help.
    fx.delete_table();
    daemon.submit(&[fx.put_job("parked.jpg", None, None)]);
    daemon.wait_metric("ec2_service_jobs_parked", 1.0, WAIT);
    // Logged at ERROR once, not once per retry.
    std::thread::sleep(Duration::from_secs(2));
    let errors: Vec<_> = daemon
        .events("the record cannot be written; the job is parked until `systemctl reload ec2-service` or a restart (fix the cause first)")
        .into_iter()
        .filter(|e| e["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["code"], "table-not-found");
    // Listed by `status`, failing /readyz, still stored on disk.
    let status = String::from_utf8(daemon.cli(&["status"]).stdout).unwrap();
    assert!(status.contains("1 parked"), "{status}");
    assert!(status.contains("parked.jpg  table-not-found"), "{status}");
    let ready = daemon.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("parked"), "{}", ready.text());
    assert_eq!(stored_jobs(&fx.scratch).len(), 1);
    // The operator restores the table and reloads: the job finishes.
    fx.create_table();
    daemon.signal("HUP");
    fx.wait_status("parked.jpg", "DONE", WAIT);
    daemon.wait_metric("ec2_service_jobs_parked", 0.0, WAIT);
    // Readiness answers are cached for a second.
    let deadline = Instant::now() + WAIT;
    while daemon.get("/readyz").status != 200 {
        assert!(Instant::now() < deadline, "ready again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_slower_older_job_never_leaves_its_variants_over_the_newer_ones() {
    // Two daemons share the buckets and the table (two boxes, or a redelivery and a
    // reprocess). The first upload's render on A is slowed down past the second upload's
    // whole life on B.
    let fx = Fixture::new("stale");
    let key = "stale/race.jpg";
    let a = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[("EC2_SERVICE_FAULTS", "render-delay-ms=4000@stale/")],
    );
    let fx_b = fx.sibling("stale-b");
    let b = Daemon::start(&fx_b, &moto().endpoint(), "", &[]);

    let red = flat(400, 300, [220, 30, 30]);
    let blue = flat(400, 300, [30, 30, 220]);
    let first = fx.put_source(key, &red);
    a.submit(&[fx.put_job(key, Some("0001"), None)]);
    // A has downloaded the red photo and sits in its render.
    let deadline = Instant::now() + WAIT;
    while a.metric("ec2_service_bytes_in_total") == 0.0 {
        assert!(Instant::now() < deadline, "A never downloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = fx.put_source(key, &blue);
    assert_ne!(first, second);
    b.submit(&[fx.put_job(key, Some("0002"), None)]);
    fx.wait_until(key, WAIT, |r| {
        s(r, "Status") == "DONE" && s(r, "Sequencer") == "0002"
    });
    // A finishes its stale render, publishes it under its own keys, loses its claim and
    // removes them.
    a.wait_metric(
        "ec2_service_jobs_finished_total{status=\"SKIPPED\",code=\"\"}",
        1.0,
        WAIT,
    );
    let record = fx.record(key).unwrap();
    assert_eq!(s(&record, "ETag"), second.trim_matches('"'));
    assert_eq!(
        fx.own_variants(key),
        variant_keys(&record),
        "one set, the newer"
    );
    let large = decode(&fx.output(&variant_key(&record, "large")).bytes);
    let [r, _, blue_channel] = mean(&large, 0, 0, large.width, large.height);
    assert!(
        blue_channel > 180.0 && r < 80.0,
        "the blue upload's pixels: {r} {blue_channel}"
    );
}

#[test]
fn a_replayed_request_is_a_duplicate_that_costs_nothing() {
    let fx = Fixture::new("replay");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    fx.put_source("once.jpg", &photo(64, 48));
    let body = serde_json::to_vec(&JobsRequest {
        jobs: vec![fx.put_job("once.jpg", Some("0A"), None)],
    })
    .unwrap();
    let at = now();
    let first = daemon.post_signed(&body, &fx.key(), at);
    assert_eq!(first.status, 202);
    let record = fx.wait_status("once.jpg", "DONE", WAIT);
    daemon.wait_metric(
        "ec2_service_jobs_finished_total{status=\"DONE\",code=\"\"}",
        1.0,
        WAIT,
    );

    // The very same signed request, later, inside the skew window.
    let replay = daemon.post_signed(&body, &fx.key(), at);
    assert_eq!(replay.status, 202, "{}", replay.text());
    let answers: JobAnswers = serde_json::from_slice(&replay.body).unwrap();
    assert_eq!(answers.jobs[0].status, AnswerStatus::Duplicate);
    assert_eq!(daemon.metric("ec2_service_requests_replayed_total"), 1.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        daemon.events("job finished").len(),
        1,
        "no job for the replay"
    );
    assert_eq!(
        fx.record("once.jpg").unwrap(),
        record,
        "nothing was written"
    );

    // An expired signature is refused without telling the caller the server's clock.
    let old = daemon.post_signed(&body, &fx.key(), now() - 3600);
    assert_eq!(old.status, 401);
    let clock = now().to_string();
    assert!(!old.text().contains(&clock[..6]), "{}", old.text());
}

/// One connection that sends signature headers that pass the first checks (a known key
/// id, a current timestamp) and a 1 MiB `Content-Length`, then `sent` bytes of the body.
fn attacker(daemon: &Daemon, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1048576\r\nx-pipeline-key-id: forwarder-1\r\n\
         x-pipeline-timestamp: {}\r\nx-pipeline-signature: {}\r\n\r\n",
        now(),
        "ab".repeat(32)
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        if stream.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n;
    }
    stream
}

#[test]
fn unauthenticated_bodies_are_not_held_and_their_connections_are_closed() {
    let fx = Fixture::new("slow-bodies");
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[
            ("EC2_SERVICE__SERVER__BODY_TIMEOUT_SECS", "10"),
            ("EC2_SERVICE__SERVER__MAX_BODIES_IN_MEMORY", "8"),
        ],
    );
    // The bound: 8 bodies of 1 MiB, plus what actix buffers per connection before the
    // handler reads (its read buffer, at most 128 KiB, and 32 KiB of payload): about
    // 150 MiB with the baseline. Holding every body would be 400 MiB.
    let baseline = daemon.peak_rss_bytes();
    // 200 connections send a whole 1 MiB body and hold; 200 send half and stall.
    let mut streams = Vec::new();
    for i in 0..400 {
        let sent = if i % 2 == 0 { 1 << 20 } else { 1 << 19 };
        let stream = attacker(&daemon, sent);
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        streams.push(stream);
    }
    // Every connection is answered and closed by the daemon within 30 s.
    let started = Instant::now();
    let mut open: Vec<TcpStream> = streams;
    while !open.is_empty() && started.elapsed() < Duration::from_secs(30) {
        open.retain_mut(|stream| {
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        return true;
                    }
                    Err(_) => return false,
                }
            }
        });
    }
    assert!(
        open.is_empty(),
        "{} of 400 connections still open after {:?}",
        open.len(),
        started.elapsed()
    );
    let peak = daemon.peak_rss_bytes();
    eprintln!(
        "400 slow bodies: peak resident memory {} MiB (baseline {} MiB)",
        peak >> 20,
        baseline >> 20
    );
    assert!(
        peak < 200 << 20,
        "peak resident memory {} MiB (baseline {} MiB)",
        peak >> 20,
        baseline >> 20
    );
    // And the daemon still serves.
    fx.put_source("after.jpg", &photo(64, 48));
    daemon.submit(&[fx.put_job("after.jpg", None, None)]);
    fx.wait_status("after.jpg", "DONE", WAIT);
}

/// A tiny image made into a big file: a JPEG whose COM segments carry `padding` bytes.
fn padded_jpeg(padding: usize) -> Vec<u8> {
    let jpeg = photo(64, 48);
    let mut out = jpeg[..2].to_vec();
    let mut left = padding;
    while left > 0 {
        let n = left.min(65_000);
        out.extend([0xFF, 0xFE]);
        out.extend(((n + 2) as u16).to_be_bytes());
        out.extend(std::iter::repeat_n(b'p', n));
        left -= n;
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn the_memory_budget_is_taken_before_a_source_is_read_into_memory() {
    // Four 40 MB sources with tiny pictures, four jobs at once, a 64 MiB budget: each
    // source must wait for its share before it is read, so at most one is in memory.
    let fx = Fixture::new("budget");
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[
            ("EC2_SERVICE__SERVER__CONCURRENCY", "4"),
            ("EC2_SERVICE__SERVER__MEMORY_BUDGET_BYTES", "67108864"),
        ],
    );
    let big = padded_jpeg(40 << 20);
    let keys: Vec<String> = (0..4).map(|i| format!("big/{i}.jpg")).collect();
    for key in &keys {
        fx.put_source(key, &big);
    }
    let baseline = daemon.peak_rss_bytes();
    let jobs: Vec<_> = keys.iter().map(|k| fx.put_job(k, None, None)).collect();
    daemon.submit(&jobs);
    for key in &keys {
        fx.wait_status(key, "DONE", WAIT);
    }
    let peak = daemon.peak_rss_bytes();
    // One 40 MB source (and a copy while it is read) fits; four (160 MB) do not.
    assert!(
        peak < baseline + (110 << 20),
        "peak {} MiB over a baseline of {} MiB",
        peak >> 20,
        baseline >> 20
    );
}

#[test]
fn reprocessing_a_deleted_source_leaves_its_record_deleted() {
    let fx = Fixture::new("reprocess-deleted");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    fx.put_source("gone.jpg", &photo(64, 48));
    daemon.submit(&[fx.put_job("gone.jpg", Some("01"), None)]);
    fx.wait_status("gone.jpg", "DONE", WAIT);
    fx.delete_source("gone.jpg");
    daemon.submit(&[fx.delete_job("gone.jpg", Some("02"), None)]);
    let deleted = fx.wait_status("gone.jpg", "DELETED", WAIT);

    let out = daemon.cli(&["reprocess", "gone.jpg"]);
    assert!(out.status.success());
    daemon.wait_metric(
        "ec2_service_jobs_finished_total{status=\"SKIPPED\",code=\"\"}",
        1.0,
        WAIT,
    );
    let record = fx.record("gone.jpg").unwrap();
    assert_eq!(s(&record, "Status"), "DELETED");
    assert_eq!(record, deleted, "untouched");
    // Were the source uploaded again (and its event lost), reprocess renders it.
    fx.put_source("gone.jpg", &photo(64, 48));
    daemon.cli(&["reprocess", "gone.jpg"]);
    fx.wait_status("gone.jpg", "DONE", WAIT);
}

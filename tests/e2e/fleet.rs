//! Fleet mode: several daemons read one SQS queue themselves (`[intake] mode = "sqs"`),
//! through the real SDK against moto. Losing a box loses nothing; a slow render is never
//! delivered twice; SIGTERM hands work back; two uploads of one key end with the second;
//! a poison source ends with a record that says why.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::fixture::{n, s, variant_key, variant_keys};
use crate::support::fleet::{FLEET_VISIBILITY_SECS, Fleet};
use crate::support::images::{decode, mean};
use crate::support::photo;
use crate::support::pipeline::PREFIX;

const WAIT: Duration = Duration::from_secs(120);

fn flat(rgb: [u8; 3]) -> Vec<u8> {
    use ec2_service::pipeline::{Layout, OutputFormat, Raster, encode::encode};
    encode(
        &Raster::filled(320, 240, Layout::Rgb, &rgb),
        OutputFormat::Jpeg,
        92,
        [255, 255, 255],
    )
    .unwrap()
}

#[test]
fn a_burst_with_one_daemon_killed_mid_way_ends_with_one_right_record_each() {
    let mut fleet = Fleet::start("fleet-burst", 2, 2, 5, &[]);
    let keys: Vec<String> = (0..120)
        .map(|i| format!("{PREFIX}burst/{i:03}.jpg"))
        .collect();
    let image = photo(160, 120);
    let started = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        fleet.fx.put_source(key, &image);
        if i == 40 {
            fleet.kill(0);
        }
        if i == 80 {
            fleet.restart(0, &[]);
        }
    }
    let deadline = Instant::now() + WAIT;
    let records = loop {
        let records = fleet.fx.records();
        let done = records.iter().filter(|r| s(r, "Status") == "DONE").count();
        if done == keys.len() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} DONE; queue {:?}",
            keys.len(),
            fleet.queue_depth()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let recorded: BTreeSet<String> = records.iter().map(|r| s(r, "FileName")).collect();
    assert_eq!(
        recorded,
        keys.iter().cloned().collect(),
        "one record per upload"
    );
    fleet.wait_queue_empty(WAIT);
    for record in &records {
        let key = s(record, "FileName");
        assert_eq!(fleet.fx.own_variants(&key), variant_keys(record), "{key}");
    }
    assert_eq!(fleet.dlq_depth(), 0, "nothing in the DLQ");
    eprintln!(
        "fleet burst: {} uploads, 2 daemons, one killed at 40 and back at 80, drained in {:?}",
        keys.len(),
        started.elapsed()
    );
}

#[test]
fn a_render_slower_than_the_visibility_timeout_is_delivered_once() {
    let fleet = Fleet::start(
        "fleet-slow",
        2,
        2,
        5,
        &[("EC2_SERVICE_FAULTS", "render-delay-ms=15000@uploads/slow")],
    );
    let key = "uploads/slow.jpg";
    fleet.fx.put_source(key, &photo(200, 150));
    let record = fleet.fx.wait_status(key, "DONE", WAIT);
    assert_eq!(n(&record, "Attempts"), 1.0, "received once: {record:#?}");
    // More than twice the visibility timeout passed while it rendered: had the message
    // come back, the other daemon would have taken it.
    let accepted: f64 = (0..2)
        .map(|i| fleet.daemon(i).metric("ec2_service_jobs_accepted_total"))
        .sum();
    assert_eq!(accepted, 1.0, "one delivery in all");
    const { assert!(15 > 2 * FLEET_VISIBILITY_SECS) };
    fleet.wait_queue_empty(WAIT);
    let done: Vec<_> = fleet
        .finished_lines()
        .into_iter()
        .filter(|l| l["key"] == key)
        .collect();
    assert_eq!(done.len(), 1, "{done:#?}");
}

#[test]
fn sigterm_hands_the_messages_back_and_another_daemon_finishes_them() {
    // A long visibility timeout: a message that was not handed back would stay away a
    // minute.
    let mut fleet = Fleet::start(
        "fleet-term",
        2,
        0,
        5,
        &[("EC2_SERVICE__INTAKE__VISIBILITY_TIMEOUT_SECS", "60")],
    );
    fleet.restart(
        0,
        &[
            ("EC2_SERVICE__SERVER__CONCURRENCY", "2"),
            ("EC2_SERVICE__SERVER__DRAIN_SECS", "1"),
            ("EC2_SERVICE_FAULTS", "render-delay-ms=20000@uploads/held"),
        ],
    );
    let keys: Vec<String> = (0..2).map(|i| format!("uploads/held/{i}.jpg")).collect();
    for key in &keys {
        fleet.fx.put_source(key, &photo(120, 90));
    }
    let deadline = Instant::now() + WAIT;
    while fleet.daemon(0).metric("ec2_service_jobs_in_flight") < 2.0 {
        assert!(Instant::now() < deadline, "A takes both");
        std::thread::sleep(Duration::from_millis(100));
    }
    fleet.daemon(0).signal("TERM");
    let mut a = fleet.take(0);
    assert!(a.wait(Duration::from_secs(30)).success());
    assert!(
        !a.events("messages of unfinished jobs handed back to the queue")
            .is_empty(),
        "A says it handed them back"
    );
    let stopped = Instant::now();
    fleet.restart(1, &[]);
    for key in &keys {
        fleet.fx.wait_status(key, "DONE", WAIT);
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(40),
        "B took them at once, not after the 60 s visibility timeout: {:?}",
        stopped.elapsed()
    );
    fleet.wait_queue_empty(WAIT);
}

#[test]
fn the_same_key_uploaded_twice_seconds_apart_ends_with_the_second_image() {
    let fleet = Fleet::start(
        "fleet-twice",
        2,
        2,
        5,
        &[("EC2_SERVICE_FAULTS", "render-delay-ms=3000@uploads/twice")],
    );
    let key = "uploads/twice.jpg";
    fleet.fx.put_source(key, &flat([220, 30, 30]));
    std::thread::sleep(Duration::from_secs(2));
    let second = fleet.fx.put_source(key, &flat([30, 30, 220]));
    let record = fleet.fx.wait_until(key, WAIT, |r| {
        s(r, "Status") == "DONE" && s(r, "ETag") == second.trim_matches('"')
    });
    fleet.wait_queue_empty(WAIT);
    // Both jobs have ended (the stale one, if it ran after, lost its claim).
    std::thread::sleep(Duration::from_secs(4));
    let record_now = fleet.fx.record(key).unwrap();
    assert_eq!(
        s(&record_now, "ETag"),
        s(&record, "ETag"),
        "never overwritten by the first"
    );
    assert_eq!(
        fleet.fx.own_variants(key),
        variant_keys(&record_now),
        "one set"
    );
    let large = decode(&fleet.fx.output(&variant_key(&record_now, "large")).bytes);
    let [r, _, b] = mean(&large, 0, 0, large.width, large.height);
    assert!(
        b > 180.0 && r < 80.0,
        "the second (blue) upload's pixels: {r} {b}"
    );
}

#[test]
fn a_poison_source_fails_and_one_that_kills_daemons_ends_in_the_dlq_with_its_reason() {
    let mut fleet = Fleet::start(
        "fleet-poison",
        1,
        1,
        2,
        &[("EC2_SERVICE_FAULTS", "abort@uploads/killer")],
    );
    let mut truncated = photo(400, 300);
    truncated.truncate(truncated.len() / 2);
    fleet.fx.put_source("uploads/broken.jpg", &truncated);
    let record = fleet.fx.wait_status("uploads/broken.jpg", "FAILED", WAIT);
    assert_eq!(s(&record, "ErrorCode"), "corrupt-image");

    // A source that kills the daemon each time it renders: SQS delivers it twice (the
    // queue's maxReceiveCount), the second time the record says so, and then it moves to
    // the DLQ; the daemon is restarted after each death, as systemd would.
    fleet.fx.put_source("uploads/killer.jpg", &photo(64, 48));
    let deadline = Instant::now() + WAIT;
    let mut deaths = 0;
    while fleet.dlq_depth() == 0 {
        assert!(
            Instant::now() < deadline,
            "the killer never reached the DLQ"
        );
        let daemon = fleet.daemons[0].as_mut().unwrap();
        if daemon.try_exited() {
            deaths += 1;
            fleet.take(0);
            fleet.restart(0, &[]);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(deaths >= 2, "{deaths} deaths");
    let record = fleet.fx.record("uploads/killer.jpg").expect("a record");
    assert_eq!(s(&record, "Status"), "FAILED");
    assert_eq!(s(&record, "ErrorCode"), "delivery-limit");
    assert!(s(&record, "ErrorMessage").contains("DLQ"), "{record:#?}");
}

#[test]
fn a_fleet_reconcile_goes_through_the_queue_and_one_box_sweeps_at_a_time() {
    let fleet = Fleet::start(
        "fleet-reconcile",
        2,
        2,
        5,
        &[("EC2_SERVICE__ADMIN__RECONCILE_PAGE_SIZE", "1")],
    );
    // Uploaded where the notification does not look: no event ever came.
    let keys: Vec<String> = (0..60).map(|i| format!("late/{i:02}.jpg")).collect();
    for key in &keys {
        fleet.fx.put_source(key, &photo(48, 32));
    }
    let first = fleet
        .daemon(0)
        .admin_post("/admin/reconcile", br#"{"prefix":"late/"}"#);
    // While box 0 sweeps (one object per page, the lease renewed every page), box 1 is
    // refused.
    let second = fleet.daemon(1).cli(&["reconcile", "--prefix", "late/"]);
    assert_eq!(
        first["running"], true,
        "sixty pages take longer than the answer"
    );
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("reconcile-running"),
        "{second:?}"
    );
    for key in &keys {
        let record = fleet.fx.wait_status(key, "DONE", WAIT);
        assert_eq!(s(&record, "Origin"), "reconcile");
    }
    fleet.wait_queue_empty(WAIT);
    // The lease was given back: the next sweep runs (and finds everything up to date).
    let again = fleet.daemon(1).cli(&["reconcile", "--prefix", "late/"]);
    assert!(again.status.success(), "{again:?}");
}

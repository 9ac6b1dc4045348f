//! The soak run (ignored by default: about five minutes): a burst of 1,000 uploads through
//! the whole pipeline while the daemon is `kill -9`ed five times at random moments and the
//! AWS endpoint is cut for 30 s. Nothing may be lost: every upload ends with one DONE
//! record listing exactly its variants, and the queue and its DLQ end empty.
//!
//! `cargo test -p pipeline-tests --test e2e -- --ignored soak --nocapture`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::fixture::{s, variant_keys};
use crate::support::photo;
use crate::support::pipeline::{PREFIX, Pipeline};

#[test]
#[ignore = "a five-minute soak run: cargo test -p pipeline-tests --test e2e -- --ignored soak"]
fn soak_a_burst_of_1000_uploads_with_kills_and_an_outage_loses_nothing() {
    let started = Instant::now();
    // The production retry policy: a 30 s outage is well inside its budget.
    let mut p = Pipeline::start_behind_proxy(
        "soak",
        &[
            ("EC2_SERVICE__RETRY__MAX_ATTEMPTS", "8"),
            ("EC2_SERVICE__RETRY__BASE_DELAY_MS", "1000"),
            ("EC2_SERVICE__RETRY__MAX_DELAY_MS", "120000"),
        ],
    );
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("{PREFIX}soak/{i:04}.jpg"))
        .collect();
    let images = [photo(160, 120), photo(120, 160), photo(200, 150)];
    // A cheap deterministic "random": the kills land at different points of the burst.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let kill_at: BTreeSet<usize> = (0..5).map(|i| 100 + i * 150 + next(100) as usize).collect();
    let mut kills = 0;
    let mut outage = None;
    for (i, key) in keys.iter().enumerate() {
        p.fx.put_source(key, &images[i % images.len()]);
        if kill_at.contains(&i) {
            p.kill_daemon();
            std::thread::sleep(Duration::from_millis(300 + next(1200)));
            p.restart_daemon_behind_proxy();
            kills += 1;
        }
        if i == 500 {
            eprintln!("soak: cutting the daemon's AWS endpoint for 30 s at upload {i}");
            let switch = p.endpoint_switch();
            switch.set_up(false);
            outage = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(30));
                switch.set_up(true);
            }));
        }
    }
    outage.expect("an outage").join().unwrap();
    eprintln!(
        "soak: {} uploads, {kills} kills, one 30 s cut, in {:?}",
        keys.len(),
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(900);
    let records = loop {
        let records = p.fx.records();
        let done = records.iter().filter(|r| s(r, "Status") == "DONE").count();
        if done == keys.len() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} DONE after 15 minutes; queue {:?}, DLQ {}",
            keys.len(),
            p.queue_depth(),
            p.dlq_depth()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let recorded: BTreeSet<String> = records.iter().map(|r| s(r, "FileName")).collect();
    assert_eq!(
        recorded,
        keys.iter().cloned().collect(),
        "one record per upload"
    );
    let mut listed = BTreeSet::new();
    for record in &records {
        listed.extend(variant_keys(record));
    }
    let outputs: BTreeSet<String> = p.fx.all_output_keys().into_iter().collect();
    assert_eq!(
        outputs, listed,
        "the output bucket holds exactly what the records list"
    );
    p.wait_queue_empty(Duration::from_secs(120));
    assert_eq!(p.dlq_depth(), 0, "nothing in the DLQ");
    eprintln!(
        "soak: {} DONE, {} variants, queue and DLQ empty, {:?} in all",
        records.len(),
        outputs.len(),
        started.elapsed()
    );
}

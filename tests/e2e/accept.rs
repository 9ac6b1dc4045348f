//! `POST /v1/jobs`: who may send jobs, what a job must look like, and the bounded queue.

use std::time::Duration;

use pipeline_contract::{AnswerStatus, ErrorBody, JobAnswers, SigningKey};

use crate::support::daemon::{Daemon, now};
use crate::support::fixture::{Fixture, SECRET};
use crate::support::moto::moto;
use crate::support::photo;

fn error(response: &ec2_service::cli::admin_client::Response) -> ErrorBody {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|_| panic!("not an error body: {}", response.text()))
}

#[test]
fn bad_and_expired_signatures_are_401_and_rotated_keys_are_accepted() {
    let fx = Fixture::new("signatures");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let body = serde_json::to_vec(&pipeline_contract::JobsRequest {
        jobs: vec![fx.put_job("a.jpg", None, None)],
    })
    .unwrap();

    let wrong_secret = SigningKey::new("forwarder-1", vec![b'x'; 32]).unwrap();
    let r = daemon.post_signed(&body, &wrong_secret, now());
    assert_eq!(r.status, 401);
    assert_eq!(error(&r).code, "bad-signature");

    let unknown = SigningKey::new("stranger", SECRET).unwrap();
    let r = daemon.post_signed(&body, &unknown, now());
    assert_eq!((r.status, error(&r).code.as_str()), (401, "unknown-key"));

    let r = daemon.post_signed(&body, &fx.key(), now() - 3_600);
    assert_eq!(
        (r.status, error(&r).code.as_str()),
        (401, "expired-signature")
    );
    let r = daemon.post_signed(&body, &fx.key(), now() + 3_600);
    assert_eq!(
        (r.status, error(&r).code.as_str()),
        (401, "expired-signature")
    );

    // Signed for another body.
    let signature = pipeline_contract::sign(&fx.key(), "POST", "/v1/jobs", b"{}", now());
    let r = daemon.request("POST", "/v1/jobs", &signature.pairs(), &body);
    assert_eq!((r.status, error(&r).code.as_str()), (401, "bad-signature"));

    let r = daemon.request("POST", "/v1/jobs", &[], &body);
    assert_eq!(
        (r.status, error(&r).code.as_str()),
        (401, "missing-signature")
    );

    // Both keys of a rotation are accepted.
    let rotated = SigningKey::new("other-key", "z".repeat(40)).unwrap();
    fx.put_source("a.jpg", &photo(64, 48));
    let r = daemon.post_signed(&body, &rotated, now());
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        daemon.metric("ec2_service_requests_rejected_total{code=\"bad-signature\"}"),
        2.0
    );
}

#[test]
fn malformed_bodies_are_400_and_every_job_is_answered_on_its_own() {
    let fx = Fixture::new("malformed");
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[("EC2_SERVICE__SERVER__MAX_BODY_BYTES", "4096")],
    );
    let post = |body: &[u8]| daemon.post_signed(body, &fx.key(), now());

    let r = post(b"{\"jobs\": [");
    assert_eq!((r.status, error(&r).code.as_str()), (400, "malformed-body"));
    let r =
        post(br#"{"jobs": [{"action": "resize", "bucket": "b", "key": "k", "eventName": "x"}]}"#);
    assert_eq!((r.status, error(&r).code.as_str()), (400, "malformed-body"));
    let r = daemon.post_signed(&[b' '; 8192], &fx.key(), now());
    assert_eq!((r.status, error(&r).code.as_str()), (413, "body-too-large"));

    // One request: a misrouted job, one of the daemon's own variants, a key with a TAB,
    // an unusable sequencer, an ordinary key. Each is answered on its own; the refused
    // ones sink nobody, and the rest end as records.
    for key in ["tab\there.jpg", "odd-sequencer.jpg", "plain.jpg"] {
        fx.put_source(key, &photo(64, 48));
    }
    let mut foreign = fx.put_job("a.jpg", None, None);
    foreign.bucket = "someone-elses-bucket".to_owned();
    let mut own = fx.put_job("variants/a.jpg/0123456789ab/thumb.webp", None, None);
    own.bucket = fx.output_bucket.clone();
    let r = daemon.post_jobs(&[
        foreign,
        own,
        fx.put_job("tab\there.jpg", None, None),
        fx.put_job("odd-sequencer.jpg", Some("not-hex"), None),
        fx.put_job("plain.jpg", None, None),
    ]);
    assert_eq!(r.status, 202, "{}", r.text());
    let answers: JobAnswers = serde_json::from_slice(&r.body).unwrap();
    let got: Vec<(AnswerStatus, Option<&str>)> = answers
        .jobs
        .iter()
        .map(|a| (a.status, a.code.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (AnswerStatus::Refused, Some("wrong-bucket")),
            (AnswerStatus::Refused, Some("own-output")),
            (AnswerStatus::Accepted, None),
            (AnswerStatus::Accepted, None),
            (AnswerStatus::Accepted, None),
        ]
    );
    for key in ["tab\there.jpg", "odd-sequencer.jpg", "plain.jpg"] {
        fx.wait_status(key, "DONE", Duration::from_secs(30));
    }
    assert!(fx.record("a.jpg").is_none());
    assert_eq!(fx.records().len(), 3);
    // The key with a TAB is escaped in the log: one line, one token.
    let line = daemon
        .events("job finished")
        .into_iter()
        .find(|e| e["key"].as_str().is_some_and(|k| k.contains("tab")))
        .expect("a line for the TAB key");
    assert_eq!(line["key"], "tab\\there.jpg");
    assert!(
        daemon.logs().iter().all(|l| !l.contains('\t')),
        "no raw control character in the log"
    );
}

#[test]
fn a_full_queue_is_503_with_retry_after_and_stores_nothing() {
    let fx = Fixture::new("full-queue");
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[("EC2_SERVICE__SERVER__QUEUE_CAPACITY", "1")],
    );
    fx.put_source("one.jpg", &photo(64, 48));
    let r = daemon.post_jobs(&[
        fx.put_job("one.jpg", None, None),
        fx.put_job("two.jpg", None, None),
    ]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(error(&r).code, "queue-full");
    let retry_after: u32 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_eq!(
        daemon.metric("ec2_service_requests_rejected_total{code=\"queue-full\"}"),
        1.0
    );

    // What fits is accepted and processed.
    daemon.submit(&[fx.put_job("one.jpg", None, None)]);
    fx.wait_status("one.jpg", "DONE", Duration::from_secs(30));
    assert!(
        fx.record("two.jpg").is_none(),
        "the refused request left nothing behind"
    );
}

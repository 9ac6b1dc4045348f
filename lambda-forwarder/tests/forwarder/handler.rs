//! Handler tests: events in, exact requests on a real loopback daemon stub, exact answers.

use std::time::Duration;

use lambda_forwarder::{ForwardError, Response, SubmitError};
use pipeline_contract::{AnswerStatus, JobAction, JobRequest, JobsRequest};
use serde_json::{Value, json};

use crate::support::*;

const AWS_KEY: &str = "uploads/2024/05/01/trip/day 1/red flower (copy) + café 日本.jpg";

fn aws_put_job() -> JobRequest {
    JobRequest {
        action: JobAction::Process,
        bucket: "photos-source-prod".into(),
        key: AWS_KEY.into(),
        size: Some(3_145_728),
        etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
        version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".into()),
        sequencer: Some("0055AED6DCD90281E5".into()),
        event_time: Some("2024-05-01T12:00:00.123Z".into()),
        event_name: "ObjectCreated:Put".into(),
    }
}

fn moto_put_job() -> JobRequest {
    JobRequest {
        action: JobAction::Process,
        bucket: "photos-source-prod".into(),
        key: "uploads/nested/summer 2024/beach #1.JPG".into(),
        size: Some(52_341),
        etag: Some("6805f2cfc46c0f04559748bb039d69ae".into()),
        version_id: None,
        sequencer: None,
        event_time: Some("2024-05-01T12:00:00.123456".into()),
        event_name: "ObjectCreated:Put".into(),
    }
}

fn to_json(response: &Response) -> Value {
    serde_json::to_value(response).unwrap()
}

fn no_failures() -> Value {
    json!({"batchItemFailures": []})
}

fn failures(ids: &[&str]) -> Value {
    json!({"batchItemFailures": ids
        .iter()
        .map(|id| json!({"itemIdentifier": id}))
        .collect::<Vec<_>>()})
}

/// The only request the daemon received, verified and decoded.
fn single_request(daemon: &Server) -> JobsRequest {
    let requests = daemon.requests();
    assert_eq!(requests.len(), 1, "exactly one request per invocation");
    assert_signed_jobs_request(&requests[0])
}

#[tokio::test]
async fn aws_put_event_becomes_one_signed_process_job_with_every_field() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;

    let response = forwarder.handle(fixture("aws-put.json")).await.unwrap();

    assert_eq!(to_json(&response), json!({"forwarded": 1, "skipped": 0}));
    assert_eq!(single_request(&daemon).jobs, vec![aws_put_job()]);
    // The exact wire form the daemon reads.
    assert_eq!(
        daemon.requests()[0].json(),
        json!({"jobs": [{
            "action": "process",
            "bucket": "photos-source-prod",
            "key": AWS_KEY,
            "size": 3_145_728,
            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
            "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
            "sequencer": "0055AED6DCD90281E5",
            "eventTime": "2024-05-01T12:00:00.123Z",
            "eventName": "ObjectCreated:Put"
        }]})
    );
}

#[tokio::test]
async fn moto_put_event_with_missing_fields_and_encoded_slashes_is_forwarded() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]).await;

    let response = forwarder.handle(fixture("moto-put.json")).await.unwrap();

    assert_eq!(to_json(&response), json!({"forwarded": 1, "skipped": 0}));
    assert_eq!(single_request(&daemon).jobs, vec![moto_put_job()]);
}

#[tokio::test]
async fn delete_events_become_delete_jobs() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;

    forwarder.handle(fixture("aws-delete.json")).await.unwrap();
    forwarder.handle(fixture("moto-delete.json")).await.unwrap();

    let requests = daemon.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        assert_signed_jobs_request(&requests[0]).jobs,
        vec![JobRequest {
            action: JobAction::Delete,
            bucket: "photos-source-prod".into(),
            key: AWS_KEY.into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: Some("0055AED6DCD90281F0".into()),
            event_time: Some("2024-05-01T12:05:00.456Z".into()),
            event_name: "ObjectRemoved:Delete".into(),
        }]
    );
    assert_eq!(
        assert_signed_jobs_request(&requests[1]).jobs,
        vec![JobRequest {
            action: JobAction::Delete,
            size: Some(0),
            etag: None,
            event_time: Some("2024-05-01T12:01:00.000001".into()),
            event_name: "ObjectRemoved:Delete".into(),
            ..moto_put_job()
        }]
    );
}

#[tokio::test]
async fn test_event_is_acknowledged_without_a_request() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;

    let response = forwarder.handle(fixture("test-event.json")).await.unwrap();

    assert_eq!(to_json(&response), json!({"forwarded": 0, "skipped": 0}));
    assert!(daemon.requests().is_empty());
}

#[tokio::test]
async fn filtered_keys_and_the_daemons_own_outputs_are_never_sent() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(
        &daemon.url(),
        &[
            ("SOURCE_PREFIX", "uploads/"),
            ("SOURCE_SUFFIXES", ".jpg,.jpeg,.png"),
        ],
    )
    .await;

    for (bucket, raw_key) in [
        ("photos-source-prod", "other/a.jpg"),
        ("photos-source-prod", "uploads/notes.txt"),
        ("photos-source-prod", "uploads/jpg"),
        // The daemon's outputs, in whatever bucket and however encoded.
        ("photos-output-prod", "variants/uploads/a.jpg/thumb.jpg"),
        (
            "photos-source-prod",
            "variants%2Fuploads%2Fa.jpg%2Fthumb.jpg",
        ),
    ] {
        let response = forwarder
            .handle(s3_put(bucket, raw_key, "01"))
            .await
            .unwrap();
        assert_eq!(
            to_json(&response),
            json!({"forwarded": 0, "skipped": 1}),
            "{raw_key}"
        );
    }
    assert!(daemon.requests().is_empty());
}

#[tokio::test]
async fn a_folder_named_variants_under_the_source_prefix_is_forwarded() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]).await;
    for (raw_key, key) in [
        (
            "uploads/2024/variants/beach.jpg",
            "uploads/2024/variants/beach.jpg",
        ),
        ("uploads%2Fx%2Fvariants%2Fb.png", "uploads/x/variants/b.png"),
    ] {
        let response = forwarder
            .handle(s3_put("photos-source-prod", raw_key, "01"))
            .await
            .unwrap();
        assert_eq!(to_json(&response), json!({"forwarded": 1, "skipped": 0}));
        assert_eq!(
            daemon
                .requests()
                .last()
                .map(|r| assert_signed_jobs_request(r).jobs[0].key.clone()),
            Some(key.to_owned())
        );
    }
}

#[tokio::test]
async fn an_event_from_another_bucket_is_not_forwarded_and_fails_the_invocation() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;
    let error = forwarder
        .handle(s3_put("someone-elses-bucket", "uploads/a.jpg", "01"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Forwarder.InvalidRecords");
    assert!(
        error.to_string().contains("not the source bucket"),
        "{error}"
    );
    assert!(daemon.requests().is_empty());
}

#[tokio::test]
async fn daemon_outputs_are_refused_even_with_no_prefix_or_suffix_configured() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;
    let response = forwarder
        .handle(s3_put(
            "photos-output-prod",
            "variants/uploads/red+flower.jpg/large.webp",
            "01",
        ))
        .await
        .unwrap();
    assert_eq!(to_json(&response), json!({"forwarded": 0, "skipped": 1}));
    assert!(daemon.requests().is_empty());
}

#[tokio::test]
async fn several_records_go_in_one_request_in_order_without_the_filtered_ones() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]).await;
    let mut event = fixture("aws-put.json");
    let template = event["Records"][0].clone();
    let mut records = Vec::new();
    for (raw_key, name) in [
        ("uploads/one.jpg", "ObjectCreated:Put"),
        ("elsewhere/two.jpg", "ObjectCreated:Put"),
        ("uploads/three.jpg", "ObjectRemoved:DeleteMarkerCreated"),
        ("uploads/four.jpg", "ObjectTagging:Put"),
        ("variants/uploads/one.jpg/thumb.jpg", "ObjectCreated:Put"),
        ("uploads/five.jpg", "ObjectCreated:Copy"),
    ] {
        let mut record = template.clone();
        record["s3"]["object"]["key"] = raw_key.into();
        record["eventName"] = name.into();
        records.push(record);
    }
    event["Records"] = records.into();

    let response = forwarder.handle(event).await.unwrap();

    assert_eq!(to_json(&response), json!({"forwarded": 3, "skipped": 3}));
    let sent: Vec<(JobAction, String, String)> = single_request(&daemon)
        .jobs
        .into_iter()
        .map(|job| (job.action, job.key, job.event_name))
        .collect();
    assert_eq!(
        sent,
        vec![
            (
                JobAction::Process,
                "uploads/one.jpg".into(),
                "ObjectCreated:Put".into()
            ),
            (
                JobAction::Delete,
                "uploads/three.jpg".into(),
                "ObjectRemoved:DeleteMarkerCreated".into()
            ),
            (
                JobAction::Process,
                "uploads/five.jpg".into(),
                "ObjectCreated:Copy".into()
            ),
        ]
    );
}

#[tokio::test]
async fn any_non_2xx_answer_fails_a_direct_invocation() {
    for status in [400, 401, 404, 409, 413, 429, 500, 502, 503] {
        let daemon = daemon_answering(status).await;
        let forwarder = forwarder(&daemon.url(), &[]).await;

        let error = forwarder.handle(fixture("aws-put.json")).await.unwrap_err();

        match &error {
            ForwardError::NotAccepted(SubmitError::Rejected {
                status: got,
                code,
                message,
            }) => {
                assert_eq!(*got, status);
                assert_eq!(code.as_deref(), Some(format!("stub-{status}").as_str()));
                assert_eq!(message.as_deref(), Some("stub answer"));
            }
            other => panic!("{status}: unexpected {other:?}"),
        }
        assert_eq!(error.error_type(), "Forwarder.NotAccepted");
        assert!(error.to_string().contains(&status.to_string()), "{error}");
        // It was tried exactly once, signed like any other.
        assert_eq!(single_request(&daemon).jobs, vec![aws_put_job()]);
    }
}

#[tokio::test]
async fn an_unreachable_daemon_fails_a_direct_invocation() {
    let forwarder = forwarder(&closed_port_url().await, &[]).await;
    let error = forwarder.handle(fixture("aws-put.json")).await.unwrap_err();
    assert!(
        matches!(error, ForwardError::NotAccepted(SubmitError::Transport(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_slow_daemon_times_out_and_fails_the_invocation() {
    let daemon = daemon_slow(Duration::from_secs(3)).await;
    let forwarder = forwarder(&daemon.url(), &[("REQUEST_TIMEOUT_MS", "300")]).await;
    let started = std::time::Instant::now();

    let error = forwarder.handle(fixture("aws-put.json")).await.unwrap_err();

    assert!(
        matches!(error, ForwardError::NotAccepted(SubmitError::Timeout(_))),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreadable_records_fail_a_direct_invocation_after_sending_the_readable_ones() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;
    let mut event = fixture("aws-put.json");
    let good = event["Records"][0].clone();
    let mut no_key = good.clone();
    no_key["s3"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("key");
    event["Records"] = json!([good, no_key]);

    let error = forwarder.handle(event).await.unwrap_err();

    assert!(
        matches!(error, ForwardError::InvalidRecords { count: 1, .. }),
        "{error:?}"
    );
    assert_eq!(single_request(&daemon).jobs, vec![aws_put_job()]);
}

#[tokio::test]
async fn unrecognised_payloads_fail() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;
    for payload in [
        json!({"detail-type": "Object Created", "source": "aws.s3"}),
        json!("just text"),
        json!({"Records": "nope"}),
    ] {
        let error = forwarder.handle(payload.clone()).await.unwrap_err();
        assert_eq!(
            error.error_type(),
            "Forwarder.UnrecognisedEvent",
            "{payload}"
        );
    }
    assert!(daemon.requests().is_empty());
}

#[tokio::test]
async fn sqs_batch_of_one_is_forwarded_and_deleted() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;

    let response = forwarder.handle(fixture("sqs-one.json")).await.unwrap();

    assert_eq!(to_json(&response), no_failures());
    assert_eq!(
        single_request(&daemon).jobs,
        vec![JobRequest {
            action: JobAction::Process,
            bucket: "photos-source-prod".into(),
            key: "uploads/big panorama.jpg".into(),
            size: Some(104_857_600),
            etag: Some("e2fc714c4727ee9395f324cd2e7f331f-13".into()),
            version_id: None,
            sequencer: Some("0062F0A1B2C3D4E5F6".into()),
            event_time: Some("2024-05-01T12:00:00.123Z".into()),
            event_name: "ObjectCreated:CompleteMultipartUpload".into(),
        }]
    );
}

/// Ten messages: six with a job each (AWS and moto shapes, one inside an SNS envelope), one
/// test event, one filtered key, one daemon output, and two unreadable bodies.
fn batch_of_ten() -> (Value, Vec<String>) {
    let put = |raw_key: &str, seq: &str| s3_put("photos-source-prod", raw_key, seq).to_string();
    let sns = json!({
        "Type": "Notification",
        "MessageId": "5d3a4c9e-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:photos",
        "Message": put("uploads/via+sns.png", "06"),
    })
    .to_string();
    let messages: Vec<(&str, String)> = vec![
        ("m01", put("uploads/a.jpg", "01")),
        ("m02", fixture("test-event.json").to_string()),
        ("m03", put("uploads/b+c.jpg", "03")),
        ("m04", "this is not JSON".into()),
        ("m05", fixture("moto-put.json").to_string()),
        ("m06", put("other/outside.jpg", "05")),
        ("m07", fixture("aws-delete.json").to_string()),
        (
            "m08",
            s3_put(
                "photos-output-prod",
                "variants/uploads/a.jpg/r1/thumb.jpg",
                "07",
            )
            .to_string(),
        ),
        (
            "m09",
            json!({"Records": [{"eventName": "ObjectCreated:Put"}]}).to_string(),
        ),
        ("m10", sns),
    ];
    let expected_keys = vec![
        "uploads/a.jpg".to_owned(),
        "uploads/b c.jpg".to_owned(),
        "uploads/nested/summer 2024/beach #1.JPG".to_owned(),
        AWS_KEY.to_owned(),
        "uploads/via sns.png".to_owned(),
    ];
    (sqs_event(&messages), expected_keys)
}

#[tokio::test]
async fn sqs_batch_of_ten_fails_only_the_unreadable_messages_when_the_daemon_accepts() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]).await;
    let (event, expected_keys) = batch_of_ten();

    let response = forwarder.handle(event).await.unwrap();

    assert_eq!(to_json(&response), failures(&["m04", "m09"]));
    let keys: Vec<String> = single_request(&daemon)
        .jobs
        .into_iter()
        .map(|job| job.key)
        .collect();
    assert_eq!(keys, expected_keys);
}

#[tokio::test]
async fn sqs_batch_of_ten_returns_every_message_with_a_job_when_the_daemon_refuses() {
    for status in [429, 500, 503, 400] {
        let daemon = daemon_answering(status).await;
        let forwarder = forwarder(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]).await;
        let (event, expected_keys) = batch_of_ten();

        let response = forwarder.handle(event).await.unwrap();

        // Not m02 (test event), m06 (outside the prefix) or m08 (daemon output): they are
        // done and must be deleted; the unreadable m04 and m09 fail as before.
        assert_eq!(
            to_json(&response),
            failures(&["m01", "m03", "m04", "m05", "m07", "m09", "m10"]),
            "status {status}"
        );
        let request = single_request(&daemon);
        assert_eq!(request.jobs.len(), expected_keys.len());
    }
}

#[tokio::test]
async fn one_job_the_daemon_does_not_take_fails_only_its_own_message() {
    // The daemon takes every job but two: one it cannot take now (returned, retried) and
    // one it refuses on purpose (its own output: done, never retried).
    let daemon = daemon_answering_per_job(|job| match job.key.as_str() {
        "uploads/p3.jpg" => (AnswerStatus::Refused, Some("queue-full")),
        "uploads/p7.jpg" => (AnswerStatus::Refused, Some("own-output")),
        "uploads/p5.jpg" => (AnswerStatus::Duplicate, None),
        _ => (AnswerStatus::Accepted, None),
    })
    .await;
    let forwarder = forwarder(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]).await;
    let ids: Vec<String> = (0..9)
        .map(|i| format!("m{i}"))
        .chain(["m-tab".to_owned()])
        .collect();
    let mut messages: Vec<(&str, String)> = (0..9)
        .map(|i| {
            (
                ids[i].as_str(),
                s3_put("photos-source-prod", &format!("uploads/p{i}.jpg"), "01").to_string(),
            )
        })
        .collect();
    messages.push((
        "m-tab",
        s3_put("photos-source-prod", "uploads/a%09b.jpg", "01").to_string(),
    ));

    let response = forwarder.handle(sqs_event(&messages)).await.unwrap();

    assert_eq!(to_json(&response), failures(&["m3"]));
    let sent = single_request(&daemon);
    assert_eq!(sent.jobs.len(), 10, "one request with every job");
    assert_eq!(sent.jobs[9].key, "uploads/a\tb.jpg");

    // A direct S3 event with a job the daemon did not take fails as a whole (Lambda retries).
    let error = forwarder
        .handle(s3_put("photos-source-prod", "uploads/p3.jpg", "02"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Forwarder.NotTaken");
    assert!(error.to_string().contains("queue-full"), "{error}");
    let skipped = forwarder
        .handle(s3_put("photos-source-prod", "uploads/p7.jpg", "02"))
        .await
        .unwrap();
    assert_eq!(to_json(&skipped), json!({"forwarded": 1, "skipped": 0}));
}

#[tokio::test]
async fn sqs_batch_with_an_unreachable_daemon_returns_the_messages_with_jobs() {
    let forwarder = forwarder(&closed_port_url().await, &[]).await;
    let event = sqs_event(&[
        (
            "ok-1",
            s3_put("photos-source-prod", "uploads/a.jpg", "01").to_string(),
        ),
        ("test", fixture("test-event.json").to_string()),
        ("ok-2", fixture("moto-put.json").to_string()),
    ]);

    let response = forwarder.handle(event).await.unwrap();

    assert_eq!(to_json(&response), failures(&["ok-1", "ok-2"]));
}

#[tokio::test]
async fn sqs_batch_with_nothing_to_send_makes_no_request() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[("SOURCE_SUFFIXES", ".png")]).await;
    let event = sqs_event(&[
        ("test", fixture("test-event.json").to_string()),
        ("jpg", fixture("aws-put.json").to_string()),
        ("empty", json!({"Records": []}).to_string()),
    ]);

    let response = forwarder.handle(event).await.unwrap();

    assert_eq!(to_json(&response), no_failures());
    assert!(daemon.requests().is_empty());
}

#[tokio::test]
async fn sqs_message_without_an_id_fails_the_whole_batch() {
    let daemon = daemon_accepting().await;
    let forwarder = forwarder(&daemon.url(), &[]).await;
    let mut event = fixture("sqs-one.json");
    let mut second = event["Records"][0].clone();
    second.as_object_mut().unwrap().remove("messageId");
    event["Records"].as_array_mut().unwrap().push(second);

    let error = forwarder.handle(event).await.unwrap_err();

    assert!(
        matches!(error, ForwardError::MissingMessageId { index: 1 }),
        "{error:?}"
    );
    assert!(daemon.requests().is_empty());
}

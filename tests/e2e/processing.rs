//! Processing a job: variants in the output bucket, one complete record per source,
//! idempotence, event order, permanent failures, deletes.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pipeline_contract::AnswerStatus;
use sha2::{Digest, Sha256};

use crate::support::daemon::Daemon;
use crate::support::fixture::{Fixture, Item, is_variant_key_of, n, s, variant_key, variant_keys};
use crate::support::moto::moto;
use crate::support::{bomb, heavy_photo, photo};

const WAIT: Duration = Duration::from_secs(30);

fn map<'a>(item: &'a Item, name: &str) -> &'a Item {
    match item.get(name) {
        Some(AttributeValue::M(m)) => m,
        other => panic!("{name} is not a map: {other:?}"),
    }
}

fn list<'a>(item: &'a Item, name: &str) -> &'a [AttributeValue] {
    match item.get(name) {
        Some(AttributeValue::L(l)) => l,
        other => panic!("{name} is not a list: {other:?}"),
    }
}

fn as_map(value: &AttributeValue) -> &Item {
    match value {
        AttributeValue::M(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

#[test]
fn a_signed_job_renders_every_variant_and_writes_a_complete_record() {
    let fx = Fixture::with_versioning("complete", true);
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let key = "uploads/photo.jpg";
    let bytes = photo(1200, 900);
    let etag = fx.put_source(key, &bytes);
    let accepted = daemon.submit(&[fx.put_job(
        key,
        Some("0055AED6DCD90281E5"),
        Some("2026-01-01T00:00:00.000Z"),
    )]);
    assert_eq!(accepted.jobs.len(), 1);
    assert_eq!(accepted.jobs[0].key, key);
    assert_eq!(accepted.jobs[0].status, AnswerStatus::Accepted);

    let record = fx.wait_status(key, "DONE", WAIT);
    assert_eq!(s(&record, "FileName"), key);
    assert_eq!(s(&record, "Bucket"), fx.source_bucket);
    // One form of the ETag, as S3 events give it (FAILED and PENDING records carry the
    // event's): without HTTP's quotes.
    assert_eq!(s(&record, "ETag"), etag.trim_matches('"'), "unquoted");
    assert!(
        !s(&record, "VersionId").is_empty(),
        "versioned bucket: {record:#?}"
    );
    assert_eq!(s(&record, "Sequencer"), "0055AED6DCD90281E5");
    assert_eq!(n(&record, "SizeBytes"), bytes.len() as f64);
    assert_eq!(s(&record, "Format"), "jpeg");
    assert_eq!((n(&record, "Width"), n(&record, "Height")), (1200.0, 900.0));
    assert_eq!(n(&record, "Orientation"), 1.0);
    assert_eq!(n(&record, "Attempts"), 1.0);
    let exif = map(&record, "Exif");
    assert_eq!(s(exif, "Make"), "TestCam");
    assert_eq!(s(exif, "Model"), "E2E-1");
    let gps = map(&record, "Gps");
    assert!((n(gps, "Latitude") - 48.8584).abs() < 1e-3, "{gps:?}");
    assert!((n(gps, "Longitude") - 2.2945).abs() < 1e-3, "{gps:?}");
    assert_eq!(s(&record, "Sha256"), hex::encode(Sha256::digest(&bytes)));
    assert_eq!(s(&record, "PerceptualHash").len(), 16);
    assert!(!s(&record, "BlurHash").is_empty());
    assert!(s(&record, "DominantColor").starts_with('#'));
    assert_eq!(s(&record, "RecipeVersion"), "e2e-1");
    for at in ["ReceivedAt", "ProcessedAt"] {
        assert!(s(&record, at).starts_with("20"), "{at}: {}", s(&record, at));
    }
    assert!(n(&record, "ProcessingMs") >= 0.0);
    assert!(!record.contains_key("ErrorCode") && !record.contains_key("ErrorMessage"));

    let variants = list(&record, "Variants");
    assert_eq!(variants.len(), 2);
    let expected = [
        ("large", "jpg", "jpeg", "image/jpeg", 800, 600),
        ("thumb", "webp", "webp", "image/webp", 128, 128),
    ];
    for (variant, (name, ext, format, content_type, width, height)) in variants.iter().zip(expected)
    {
        let variant = as_map(variant);
        let variant_key = s(variant, "Key");
        assert!(
            is_variant_key_of(&variant_key, key, &format!("{name}.{ext}")),
            "{variant_key}: immutable, with the render id"
        );
        assert_eq!(s(variant, "Name"), name);
        assert_eq!(s(variant, "Format"), format);
        assert_eq!(
            (n(variant, "Width"), n(variant, "Height")),
            (f64::from(width), f64::from(height))
        );
        let object = fx.output(&variant_key);
        assert_eq!(n(variant, "Bytes"), object.bytes.len() as f64);
        assert_eq!(object.content_type.as_deref(), Some(content_type));
        assert_eq!(
            object.metadata.get("variant-by").map(String::as_str),
            Some("ec2-service")
        );
        assert_eq!(
            object.cache_control.as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        // The payload is unsigned: S3 checked this CRC32, sent in a signed header, on write.
        assert_eq!(
            object.checksum_crc32.as_deref(),
            Some(
                STANDARD
                    .encode(crc32fast::hash(&object.bytes).to_be_bytes())
                    .as_str()
            ),
            "{variant_key}: stored with the CRC32 of its bytes"
        );
        let decoded = image::load_from_memory(&object.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (width, height));
    }
    assert_eq!(
        fx.output_keys("").len(),
        2,
        "nothing else in the output bucket"
    );

    // The line follows the record by a moment.
    let deadline = std::time::Instant::now() + WAIT;
    while daemon.events("job finished").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let finished = daemon.events("job finished");
    assert_eq!(finished.len(), 1, "one line per finished job");
    let line = &finished[0];
    assert_eq!(line["key"], key);
    assert_eq!(line["status"], "DONE");
    assert_eq!(line["bytes_in"], bytes.len() as u64);
    for field in [
        "download_ms",
        "wait_ms",
        "render_ms",
        "upload_ms",
        "record_ms",
        "total_ms",
        "bytes_out",
    ] {
        assert!(line[field].is_u64(), "{field} in {line}");
    }
}

#[test]
fn keys_with_spaces_plus_and_unicode_are_kept_exactly() {
    let fx = Fixture::new("keys");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let keys = [
        "uploads/red flower.jpg",
        "uploads/1+1=2 (copy) #3.jpg",
        "uploads/Ünïcødé/東京 タワー.jpg",
    ];
    for key in keys {
        fx.put_source(key, &photo(96, 64));
    }
    let jobs: Vec<_> = keys.iter().map(|k| fx.put_job(k, None, None)).collect();
    daemon.submit(&jobs);
    for key in keys {
        let record = fx.wait_status(key, "DONE", WAIT);
        assert_eq!(s(&record, "FileName"), key);
        let outputs = fx.own_variants(key);
        assert_eq!(outputs, variant_keys(&record));
        assert!(is_variant_key_of(
            &variant_key(&record, "large"),
            key,
            "large.jpg"
        ));
        let object = fx.output(outputs.iter().next().unwrap());
        let source_key = &object.metadata["source-key"];
        assert!(source_key.is_ascii(), "{source_key}");
    }
    assert_eq!(fx.records().len(), keys.len());
}

#[test]
fn the_same_job_twice_has_one_effect() {
    let fx = Fixture::new("twice");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let key = "twice.jpg";
    fx.put_source(key, &photo(96, 64));
    let job = fx.put_job(key, Some("00A1"), Some("2026-01-01T00:00:00.000Z"));
    let accepted = daemon.submit(&[job.clone(), job.clone()]);
    assert_eq!(accepted.jobs[0].id, accepted.jobs[1].id);
    assert_eq!(
        accepted.jobs.iter().map(|j| j.status).collect::<Vec<_>>(),
        [AnswerStatus::Accepted, AnswerStatus::Duplicate]
    );
    let first = fx.wait_status(key, "DONE", WAIT);

    // Delivered again later (S3 delivers at least once): accepted, and nothing changes.
    daemon.submit(&[job]);
    daemon.wait_metric(
        "ec2_service_jobs_finished_total{status=\"SKIPPED\",code=\"\"}",
        1.0,
        WAIT,
    );
    assert_eq!(fx.record(key).unwrap(), first, "the record was not touched");
    assert_eq!(fx.records().len(), 1);
    assert_eq!(
        daemon.metric("ec2_service_jobs_finished_total{status=\"DONE\",code=\"\"}"),
        1.0
    );
    assert_eq!(daemon.metric("ec2_service_jobs_duplicate_total"), 1.0);
}

#[test]
fn an_older_event_never_overwrites_a_newer_record() {
    let fx = Fixture::new("order");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let key = "order.jpg";
    fx.put_source(key, &photo(96, 64));
    let skipped = "ec2_service_jobs_finished_total{status=\"SKIPPED\",code=\"\"}";

    daemon.submit(&[fx.put_job(key, Some("0055AED6DCD90281E6"), None)]);
    let newer = fx.wait_status(key, "DONE", WAIT);
    // Longer but older: sequencers are right-padded with zeros before comparing, so
    // ...E5FF is ...E5FF and ...E6 is ...E600.
    daemon.submit(&[fx.put_job(key, Some("0055AED6DCD90281E5FF"), None)]);
    daemon.wait_metric(skipped, 1.0, WAIT);
    assert_eq!(fx.record(key).unwrap(), newer);
    // A stale delete does not remove the variants of the newer upload either.
    daemon.submit(&[fx.delete_job(key, Some("0055AED6DCD90281E0"), None)]);
    daemon.wait_metric(skipped, 2.0, WAIT);
    assert_eq!(fx.record(key).unwrap(), newer);
    assert_eq!(fx.output_keys(&format!("variants/{key}/")).len(), 2);
    // A newer event does overwrite.
    daemon.submit(&[fx.put_job(key, Some("0055AED6DCD90281E601"), None)]);
    let newest = fx.wait_until(key, WAIT, |r| {
        s(r, "Status") == "DONE" && s(r, "Sequencer") == "0055AED6DCD90281E601"
    });
    assert_ne!(s(&newest, "ProcessedAt"), s(&newer, "ProcessedAt"));

    // Without sequencers (moto's events), the event time orders.
    let timed = "timed.jpg";
    fx.put_source(timed, &photo(96, 64));
    daemon.submit(&[fx.put_job(timed, None, Some("2026-03-01T10:00:00.500Z"))]);
    let record = fx.wait_status(timed, "DONE", WAIT);
    daemon.submit(&[fx.put_job(timed, None, Some("2026-03-01T10:00:00.499Z"))]);
    daemon.wait_metric(skipped, 3.0, WAIT);
    assert_eq!(fx.record(timed).unwrap(), record);
}

#[test]
fn hostile_and_oversized_sources_fail_with_their_code() {
    let fx = Fixture::new("hostile");
    let daemon = Daemon::start(
        &fx,
        &moto().endpoint(),
        "",
        &[("EC2_SERVICE__LIMITS__MAX_SOURCE_BYTES", "50000")],
    );
    let big = heavy_photo(400, 400);
    assert!(big.len() > 50_000);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("bomb.jpg", bomb(), "dimensions-too-large"),
        (
            "notes.jpg",
            b"these are not the pixels you are looking for".to_vec(),
            "unsupported-format",
        ),
        ("empty.png", Vec::new(), "empty-source"),
        ("big.jpg", big, "source-too-large"),
    ];
    for (key, bytes, _) in &cases {
        fx.put_source(key, bytes);
    }
    let jobs: Vec<_> = cases
        .iter()
        .map(|(k, _, _)| fx.put_job(k, None, None))
        .collect();
    daemon.submit(&jobs);
    for (key, _, code) in &cases {
        let record = fx.wait_status(key, "FAILED", WAIT);
        assert_eq!(s(&record, "ErrorCode"), *code, "{key}");
        assert!(!s(&record, "ErrorMessage").is_empty());
        assert_eq!(
            n(&record, "Attempts"),
            1.0,
            "permanent failures are not retried"
        );
        assert!(fx.output_keys(&format!("variants/{key}/")).is_empty());
    }
    // The oversized source was refused from HEAD, never downloaded.
    let downloaded = daemon.metric("ec2_service_bytes_in_total");
    assert!(downloaded < 50_000.0, "{downloaded} bytes downloaded");
    assert_eq!(
        daemon
            .metric("ec2_service_jobs_finished_total{status=\"FAILED\",code=\"source-too-large\"}"),
        1.0
    );
}

#[test]
fn a_missing_source_fails_source_not_found() {
    let fx = Fixture::new("missing");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    daemon.submit(&[fx.put_job("never-uploaded.jpg", None, None)]);
    let record = fx.wait_status("never-uploaded.jpg", "FAILED", WAIT);
    assert_eq!(s(&record, "ErrorCode"), "source-not-found");
    assert_eq!(n(&record, "Attempts"), 1.0);
}

#[test]
fn a_delete_removes_the_variants_and_marks_the_record_deleted() {
    let fx = Fixture::new("delete");
    let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
    let key = "gone soon.jpg";
    fx.put_source(key, &photo(96, 64));
    daemon.submit(&[fx.put_job(key, Some("0A"), None)]);
    fx.wait_status(key, "DONE", WAIT);
    assert_eq!(fx.output_keys(&format!("variants/{key}/")).len(), 2);
    // Other sources whose keys start the same must keep their variants, including one
    // whose variants live below this one's prefix.
    for other in ["gone soon.jpg2", "gone soon.jpg/nested.jpg"] {
        fx.put_source(other, &photo(96, 64));
        daemon.submit(&[fx.put_job(other, Some("0A"), None)]);
        fx.wait_status(other, "DONE", WAIT);
    }

    fx.delete_source(key);
    daemon.submit(&[fx.delete_job(key, Some("0B"), None)]);
    let record = fx.wait_status(key, "DELETED", WAIT);
    let nested = fx.record("gone soon.jpg/nested.jpg").unwrap();
    assert_eq!(
        fx.output_keys(&format!("variants/{key}/"))
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        variant_keys(&nested),
        "only the nested source's variants are left under the deleted one's prefix"
    );
    assert!(list(&record, "Variants").is_empty());
    assert_eq!(fx.output_keys("variants/gone soon.jpg2/").len(), 2);
    assert_eq!(
        daemon.metric("ec2_service_jobs_finished_total{status=\"DELETED\",code=\"\"}"),
        1.0
    );
}

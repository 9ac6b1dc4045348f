//! The whole path, as a user drives it: an upload to the source bucket → moto's S3 event
//! notification → the SQS queue → the real forwarder handler (through `local-pump`) → a
//! signed call to the daemon → variants in the output bucket and a record in the table.
//! Each test has its own buckets, table and queue; tests only touch S3 and read results.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ec2_service::pipeline::orient::{Orientation, orient};
use ec2_service::pipeline::{Layout, Raster};

use crate::support::fixture::{is_variant_key_of, n, s, variant_key, variant_keys, variants};
use crate::support::images::{
    ExifBuilder, close, decode, encode_with_image, jpeg_with_exif, mean, quadrants_of,
};
use crate::support::pipeline::{MAX_RECEIVE_COUNT, PREFIX, Pipeline, VISIBILITY_TIMEOUT_SECS};
use crate::support::{bomb, photo};

const WAIT: Duration = Duration::from_secs(60);

/// Checks a DONE record of the standard e2e recipe (large 800 inside JPEG, thumb 128
/// cover WebP) against the output bucket; returns the decoded large variant.
fn assert_done(p: &Pipeline, key: &str, width: u32, height: u32) -> Raster {
    let record = p.fx.wait_status(key, "DONE", WAIT);
    assert_eq!(s(&record, "FileName"), key);
    assert_eq!(s(&record, "Bucket"), p.fx.source_bucket);
    assert_eq!(s(&record, "EventName"), "ObjectCreated:Put", "{record:#?}");
    assert_eq!(
        (n(&record, "Width"), n(&record, "Height")),
        (f64::from(width), f64::from(height))
    );
    // Only this source's own variants (not those of a key that continues with `/`), and
    // exactly those the record lists, under this render's id.
    assert_eq!(
        p.fx.own_variants(key),
        variant_keys(&record),
        "the output bucket holds exactly the variants"
    );
    assert!(is_variant_key_of(
        &variant_key(&record, "large"),
        key,
        "large.jpg"
    ));
    assert!(is_variant_key_of(
        &variant_key(&record, "thumb"),
        key,
        "thumb.webp"
    ));
    let scale = (800.0 / f64::from(width.max(height))).min(1.0);
    let large = (
        (f64::from(width) * scale).round() as u32,
        (f64::from(height) * scale).round() as u32,
    );
    let mut decoded_large = None;
    for variant in variants(&record) {
        let object = p.fx.output(&s(&variant, "Key"));
        assert_eq!(n(&variant, "Bytes"), object.bytes.len() as f64);
        let raster = decode(&object.bytes);
        let dims = (raster.width, raster.height);
        match s(&variant, "Name").as_str() {
            "large" => {
                assert_eq!(dims, large, "{key}: large");
                assert_eq!(object.content_type.as_deref(), Some("image/jpeg"));
                decoded_large = Some(raster);
            }
            "thumb" => {
                assert_eq!(dims, (128, 128), "{key}: thumb");
                assert_eq!(object.content_type.as_deref(), Some("image/webp"));
            }
            other => panic!("unexpected variant {other}"),
        }
    }
    decoded_large.expect("a large variant")
}

/// Asserts the four quadrant colours of an upright rendering of [`quadrants_of`].
fn assert_upright(r: &Raster, what: &str) {
    let (w, h) = (r.width, r.height);
    let q = |x0, y0| mean(r, x0 + w / 8, y0 + h / 8, x0 + w * 3 / 8, y0 + h * 3 / 8);
    for (at, got, want) in [
        ("top-left", q(0, 0), [230, 20, 20]),
        ("top-right", q(w / 2, 0), [20, 200, 20]),
        ("bottom-left", q(0, h / 2), [20, 20, 230]),
        ("bottom-right", q(w / 2, h / 2), [250, 250, 250]),
    ] {
        assert!(
            close(got, want, 12.0),
            "{what}: {at} is {got:?}, not {want:?}"
        );
    }
}

/// Noise that compresses to nothing: a PNG of about `width * height * 3` bytes.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let data = (0..width * height * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    encode_with_image(
        &Raster::new(width, height, Layout::Rgb, data),
        image::ImageFormat::Png,
    )
}

#[test]
fn a_camera_jpeg_is_turned_upright_and_its_camera_fields_recorded() {
    let p = Pipeline::start("camera");
    // Stored sideways with orientation 6 (rotate 90° clockwise to view), as phones do.
    let upright = quadrants_of(1200, 800);
    let stored = orient(upright, Orientation::from_exif(Some(8)));
    assert_eq!((stored.width, stored.height), (800, 1200));
    let jpeg = jpeg_with_exif(
        &stored,
        &ExifBuilder {
            orientation: Some(6),
            make: Some("Canon".to_owned()),
            model: Some("EOS 40D".to_owned()),
            gps: Some((-33.8568, 151.2153)),
        },
    );
    let key = "uploads/camera/IMG_0001.JPG";
    let etag = p.fx.put_source(key, &jpeg);

    let large = assert_done(&p, key, 1200, 800);
    assert_upright(&large, "large");
    let record = p.fx.record(key).unwrap();
    assert_eq!(s(&record, "ETag"), etag.trim_matches('"'));
    assert_eq!(s(&record, "Format"), "jpeg");
    assert_eq!(n(&record, "Orientation"), 6.0);
    assert_eq!(n(&record, "SizeBytes"), jpeg.len() as f64);
    assert_eq!(n(&record, "Attempts"), 1.0);
    let Some(AttributeValue::M(exif)) = record.get("Exif") else {
        panic!("no Exif map: {record:#?}");
    };
    assert_eq!(
        (s(exif, "Make").as_str(), s(exif, "Model").as_str()),
        ("Canon", "EOS 40D")
    );
    let Some(AttributeValue::M(gps)) = record.get("Gps") else {
        panic!("no Gps map: {record:#?}");
    };
    assert!((n(gps, "Latitude") + 33.8568).abs() < 1e-3, "{gps:?}");
    assert!((n(gps, "Longitude") - 151.2153).abs() < 1e-3, "{gps:?}");
    p.wait_queue_empty(WAIT);
}

#[test]
fn png_with_alpha_webp_and_animated_gif_each_get_variants_and_a_record() {
    let p = Pipeline::start("formats");
    // PNG: opaque red left half, fully transparent right half.
    let (w, h) = (300u32, 200u32);
    let mut rgba = Vec::new();
    for _ in 0..h {
        for x in 0..w {
            rgba.extend(if x < w / 2 {
                [220, 30, 30, 255]
            } else {
                [0, 0, 255, 0]
            });
        }
    }
    let png = encode_with_image(
        &Raster::new(w, h, Layout::Rgba, rgba),
        image::ImageFormat::Png,
    );
    let webp = encode_with_image(&quadrants_of(640, 480), image::ImageFormat::WebP);
    let mut gif = Vec::new();
    {
        let frame = |rgb: [u8; 3]| {
            image::Frame::new(image::RgbaImage::from_pixel(
                160,
                120,
                image::Rgba([rgb[0], rgb[1], rgb[2], 255]),
            ))
        };
        image::codecs::gif::GifEncoder::new(&mut gif)
            .encode_frames(vec![
                frame([250, 0, 0]),
                frame([0, 0, 250]),
                frame([0, 250, 0]),
            ])
            .unwrap();
    }
    p.fx.put_source("uploads/logo.png", &png);
    p.fx.put_source("uploads/holiday.webp", &webp);
    p.fx.put_source("uploads/spinner.gif", &gif);

    // PNG: alpha recorded; the JPEG variant flattens the transparent half onto white.
    let large = assert_done(&p, "uploads/logo.png", w, h);
    let record = p.fx.record("uploads/logo.png").unwrap();
    assert_eq!(s(&record, "Format"), "png");
    assert_eq!(record.get("HasAlpha"), Some(&AttributeValue::Bool(true)));
    let (lw, lh) = (large.width, large.height);
    assert!(close(
        mean(&large, 0, 0, lw / 2 - 4, lh),
        [220, 30, 30],
        12.0
    ));
    assert!(close(
        mean(&large, lw / 2 + 4, 0, lw, lh),
        [255, 255, 255],
        6.0
    ));

    let large = assert_done(&p, "uploads/holiday.webp", 640, 480);
    assert_eq!(
        s(&p.fx.record("uploads/holiday.webp").unwrap(), "Format"),
        "webp"
    );
    assert_upright(&large, "webp large");

    // Animated GIF: three frames counted, the first one rendered.
    let large = assert_done(&p, "uploads/spinner.gif", 160, 120);
    let record = p.fx.record("uploads/spinner.gif").unwrap();
    assert_eq!(s(&record, "Format"), "gif");
    assert_eq!(n(&record, "Frames"), 3.0);
    assert!(close(
        mean(&large, 0, 0, large.width, large.height),
        [250, 0, 0],
        12.0
    ));

    assert_eq!(p.fx.records().len(), 3);
    p.wait_queue_empty(WAIT);
}

#[test]
fn a_20_mb_multipart_upload_gives_one_record() {
    let p = Pipeline::start("multipart");
    let png = noise_png(2600, 2600);
    assert!(png.len() > 20_000_000, "{} bytes", png.len());
    let key = "uploads/big/panorama.png";
    // moto sends two events for one multipart object (Put and CompleteMultipartUpload).
    let etag = p.fx.put_source_multipart(key, &png, 5 * 1024 * 1024);
    assert!(etag.trim_matches('"').ends_with("-4"), "{etag}");

    // Both reach the daemon. They name the same object (bucket, key, ETag) and, when
    // moto stamps them in the same millisecond, are the same event: one job either way is
    // rendered and recorded, and a second one finds its work done.
    p.fx.wait_status(key, "DONE", WAIT);
    p.wait_queue_empty(WAIT);
    let events = p.daemon.metric("ec2_service_jobs_accepted_total")
        + p.daemon.metric("ec2_service_jobs_duplicate_total");
    assert_eq!(events, 2.0, "both of moto's events were forwarded");
    let jobs = p.daemon.metric("ec2_service_jobs_accepted_total") as usize;
    let deadline = std::time::Instant::now() + WAIT;
    while p.daemon.events("job finished").len() < jobs {
        assert!(std::time::Instant::now() < deadline, "every job finishes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let finished = p.daemon.events("job finished");
    assert!(
        finished.iter().all(|e| e["key"] == key
            && ["DONE", "SKIPPED"].contains(&e["status"].as_str().unwrap_or(""))),
        "{finished:#?}"
    );
    let record = p.fx.wait_status(key, "DONE", WAIT);
    assert_eq!(s(&record, "ETag"), etag.trim_matches('"'));
    assert_eq!(n(&record, "SizeBytes"), png.len() as f64);
    assert_eq!(
        (n(&record, "Width"), n(&record, "Height")),
        (2600.0, 2600.0)
    );
    assert_eq!(p.fx.records().len(), 1, "one record for one object");
    let outputs: BTreeSet<String> = p.fx.output_keys("").into_iter().collect();
    assert_eq!(outputs, variant_keys(&record), "one set of variants");
    let large = decode(&p.fx.output(&variant_key(&record, "large")).bytes);
    assert_eq!((large.width, large.height), (800, 800));
}

#[test]
fn keys_with_spaces_plus_hash_parentheses_percent_and_non_ascii_arrive_exactly() {
    let p = Pipeline::start("tricky-keys");
    let keys = [
        "uploads/red flower.jpg",
        "uploads/1+1=2 (copy) #3.jpg",
        "uploads/100%25 real/a%20b.jpg",
        "uploads/Ünïcødé/東京 タワー.jpg",
        "uploads/été/crème brûlée.jpeg",
    ];
    for key in keys {
        p.fx.put_source(key, &photo(240, 160));
    }
    for key in keys {
        assert_done(&p, key, 240, 160);
    }
    let recorded: BTreeSet<String> = p.fx.records().iter().map(|r| s(r, "FileName")).collect();
    assert_eq!(recorded, keys.iter().map(|k| k.to_string()).collect());
    p.wait_queue_empty(WAIT);
}

#[test]
fn hostile_files_end_failed_with_their_code_and_nothing_is_lost() {
    let p = Pipeline::start("hostile");
    let mut truncated = photo(400, 300);
    truncated.truncate(truncated.len() / 2);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("uploads/bomb.jpg", bomb(), "dimensions-too-large"),
        ("uploads/truncated.jpg", truncated, "corrupt-image"),
        (
            "uploads/notes.jpg",
            b"not an image, just text\n".repeat(10),
            "unsupported-format",
        ),
        ("uploads/empty.png", Vec::new(), "empty-source"),
    ];
    for (key, bytes, _) in &cases {
        p.fx.put_source(key, bytes);
    }
    p.fx.put_source("uploads/fine.jpg", &photo(200, 100));
    for (key, _, code) in &cases {
        let record = p.fx.wait_until(key, WAIT, |r| s(r, "Status") == "FAILED");
        assert_eq!(s(&record, "ErrorCode"), *code, "{key}: {record:#?}");
        assert!(!s(&record, "ErrorMessage").is_empty(), "{key}: a reason");
        assert!(
            p.fx.output_keys(&format!("variants/{key}/")).is_empty(),
            "{key}"
        );
    }
    assert_done(&p, "uploads/fine.jpg", 200, 100);
    assert_eq!(p.fx.records().len(), cases.len() + 1);
    // A permanent failure is a finished job: nothing waits in the queue to be retried.
    p.wait_queue_empty(WAIT);
}

#[test]
fn deleting_a_source_removes_its_variants_and_marks_its_record_deleted() {
    let p = Pipeline::start("delete");
    let key = "uploads/to be deleted.jpg";
    let kept = "uploads/to be deleted.jpg/kept.jpg";
    p.fx.put_source(key, &photo(320, 240));
    p.fx.put_source(kept, &photo(320, 240));
    assert_done(&p, key, 320, 240);
    assert_done(&p, kept, 320, 240);

    p.fx.delete_source(key);
    let record = p.fx.wait_status(key, "DELETED", WAIT);
    assert_eq!(s(&record, "EventName"), "ObjectRemoved:Delete");
    assert!(variants(&record).is_empty());
    let left: BTreeSet<String> = p.fx.output_keys("").into_iter().collect();
    assert_eq!(
        left,
        variant_keys(&p.fx.record(kept).unwrap()),
        "only the other source's variants are left"
    );
    assert_eq!(s(&p.fx.record(kept).unwrap(), "Status"), "DONE");
    p.wait_queue_empty(WAIT);
}

#[test]
fn uploads_made_while_the_daemon_is_down_come_back_from_the_queue_and_finish() {
    let mut p = Pipeline::start("daemon-down");
    p.stop_daemon();
    let key = "uploads/while down.jpg";
    p.fx.put_source(key, &photo(300, 200));
    // The forwarder cannot reach the daemon: it reports the message as failed, and the
    // pump leaves it in the queue. After more than a visibility timeout (a receive, a
    // failure, and a return to the queue at least once) it is still there.
    std::thread::sleep(Duration::from_secs(VISIBILITY_TIMEOUT_SECS as u64 * 2));
    let (visible, in_flight) = p.queue_depth();
    assert_eq!(visible + in_flight, 1, "the message is kept");
    assert!(p.fx.record(key).is_none());

    p.restart_daemon();
    assert_done(&p, key, 300, 200);
    p.wait_queue_empty(WAIT);
    assert_eq!(n(&p.fx.record(key).unwrap(), "Attempts"), 1.0);
}

#[test]
fn a_burst_of_200_uploads_all_end_done_once() {
    let p = Pipeline::start("burst");
    let keys: Vec<String> = (0..200)
        .map(|i| format!("{PREFIX}burst/{i:03}.jpg"))
        .collect();
    let image = photo(160, 120);
    for key in &keys {
        p.fx.put_source(key, &image);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let records = loop {
        let records = p.fx.records();
        let done = records.iter().filter(|r| s(r, "Status") == "DONE").count();
        if done == keys.len() {
            break records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} of {} DONE after 300 s; queue {:?}",
            keys.len(),
            p.queue_depth()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let recorded: BTreeSet<String> = records.iter().map(|r| s(r, "FileName")).collect();
    assert_eq!(
        recorded,
        keys.iter().cloned().collect(),
        "one record per upload"
    );
    for record in &records {
        assert_eq!(n(record, "Attempts"), 1.0, "{record:#?}");
        assert_eq!(variants(record).len(), 2);
    }
    assert_eq!(p.fx.output_keys("").len(), 2 * keys.len());
    p.wait_queue_empty(WAIT);
    // Each upload was rendered exactly once.
    let finished = p.daemon.events("job finished");
    let done: Vec<_> = finished.iter().filter(|e| e["status"] == "DONE").collect();
    assert_eq!(done.len(), keys.len(), "DONE lines");
    let distinct: BTreeSet<&str> = done.iter().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(distinct.len(), keys.len());
}

#[test]
fn one_odd_key_in_an_sqs_batch_sinks_none_of_its_neighbours() {
    // Nine ordinary uploads and one whose key holds a TAB, all in one batch (the pump
    // takes ten at a time): ten records, nothing in the DLQ after the receives that would
    // have moved a failed batch there.
    let p = Pipeline::start("odd-key");
    let mut keys: Vec<String> = (0..9).map(|i| format!("{PREFIX}batch/{i}.jpg")).collect();
    keys.push(format!("{PREFIX}batch/tab\there.jpg"));
    let image = photo(120, 90);
    for key in &keys {
        p.fx.put_source(key, &image);
    }
    for key in &keys {
        assert_done(&p, key, 120, 90);
    }
    p.wait_queue_empty(WAIT);
    // Long enough for a failed message to come back MAX_RECEIVE_COUNT times.
    std::thread::sleep(Duration::from_secs(
        VISIBILITY_TIMEOUT_SECS as u64 * u64::from(MAX_RECEIVE_COUNT),
    ));
    assert_eq!(p.dlq_depth(), 0, "nothing in the DLQ");
    assert_eq!(p.fx.records().len(), keys.len());
}

#[test]
fn a_folder_named_variants_in_the_uploads_is_an_ordinary_folder() {
    let p = Pipeline::start("variants-folder");
    let key = "uploads/2024/variants/beach.jpg";
    p.fx.put_source(key, &photo(300, 200));
    assert_done(&p, key, 300, 200);
    p.wait_queue_empty(WAIT);
    assert_eq!(p.dlq_depth(), 0);
}

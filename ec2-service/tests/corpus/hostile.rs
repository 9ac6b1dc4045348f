use std::collections::BTreeMap;
use std::process::Command;

use crate::corpus;

/// Codes a hostile file may end with; `internal-error` (a caught panic) is not one.
const TYPED: [&str; 8] = [
    "unsupported-format",
    "corrupt-image",
    "empty-source",
    "dimensions-too-large",
    "too-many-pixels",
    "too-many-frames",
    "over-memory-limit",
    "source-too-large",
];

/// Address-space ceiling for the run: a bomb that got past the limits would hit it and
/// crash the process, failing the test.
const ADDRESS_SPACE_BYTES: u64 = 4 << 30;
/// Peak for the whole run; every decode is held under limits.max_decode_bytes (1 GiB).
const PEAK_MEMORY_MIB: u64 = 1024;

#[test]
#[ignore = "corpus tier: scripts/test runs it when ../shared/corpus exists"]
fn every_hostile_file_ends_as_an_output_or_a_typed_error_within_memory() {
    let dir = corpus().join("hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 100);
    let out = std::env::temp_dir().join(format!("ec2-service-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE_BYTES}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_ec2-service"))
        .args(["process", "--out"])
        .arg(&out)
        .args(&files)
        .output()
        .expect("prlimit runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "the process died ({:?}):\n{stderr}\n{stdout}",
        run.status
    );

    let mut codes: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let base = out.join(&name);
        if let Ok(text) = std::fs::read_to_string(base.join("error.json")) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let code = v["code"].as_str().unwrap().to_owned();
            assert!(
                TYPED.contains(&code.as_str()),
                "{name}: {code}: {}",
                v["message"]
            );
            codes.insert(name, code);
        } else {
            let text = std::fs::read_to_string(base.join("metadata.json"))
                .unwrap_or_else(|_| panic!("{name}: neither metadata.json nor error.json"));
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for variant in v["variants"].as_array().unwrap() {
                let bytes = std::fs::read(base.join(variant["file"].as_str().unwrap())).unwrap();
                image::load_from_memory(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: variant does not decode: {e}"));
            }
            codes.insert(name, "ok".to_owned());
        }
    }
    let expect = [
        ("gen-bomb_gif_65535x65535.gif", "dimensions-too-large"),
        ("gen-bomb_jpeg_sof_65500x65500.jpg", "dimensions-too-large"),
        (
            "gen-bomb_png_50000x50000_1bit_zeros.png",
            "dimensions-too-large",
        ),
        (
            "gen-bomb_tiff_100000x100000_header.tif",
            "dimensions-too-large",
        ),
        (
            "gen-bomb_webp_vp8l_16384x16384_header.webp",
            "too-many-pixels",
        ),
        (
            "gen-bomb_gif_3000frames_4000x4000_canvas.gif",
            "too-many-frames",
        ),
        (
            "gen-bomb_webp_valid_16383x12000_rgba_lossless.webp",
            "over-memory-limit",
        ),
        ("gen-empty_zero_bytes.png", "empty-source"),
        ("gen-not_an_image_text.jpg", "unsupported-format"),
        ("gen-png_content_named.jpg", "ok"),
    ];
    for (name, code) in expect {
        assert_eq!(codes.get(name).map(String::as_str), Some(code), "{name}");
    }
    let peak: u64 = stdout
        .rsplit("peak memory ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("summary reports peak memory");
    assert!(peak < PEAK_MEMORY_MIB, "peak memory {peak} MiB");
    let _ = std::fs::remove_dir_all(&out);
}

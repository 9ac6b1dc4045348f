//! `ec2-service process` as an operator runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use ec2_service::pipeline::Raster;

use crate::support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ec2-service"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ec2-service-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn process_writes_variants_and_metadata_and_names_failures() {
    let dir = scratch("process");
    let photo = dir.join("photo.jpg");
    std::fs::write(
        &photo,
        jpeg_with_exif(
            &quadrants(),
            &ExifBuilder {
                orientation: Some(6),
                ..Default::default()
            },
        ),
    )
    .unwrap();
    // A PNG with a .jpg name: the format comes from the content.
    let misnamed = dir.join("actually-png.jpg");
    std::fs::write(
        &misnamed,
        encode_with_image(&quadrants(), image::ImageFormat::Png),
    )
    .unwrap();
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "this is not an image").unwrap();
    let out = dir.join("out");

    let run = bin()
        .args(["process", "--out"])
        .arg(&out)
        .args([&photo, &misnamed, &text])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "a failed file makes the exit status 1\n{stdout}"
    );
    assert!(
        stdout.contains("notes.jpg") && stdout.contains("unsupported-format"),
        "{stdout}"
    );
    assert!(stdout.contains("3 files, 2 ok, 1 failed"), "{stdout}");

    let meta = json(&out.join("photo.jpg/metadata.json"));
    assert_eq!(meta["format"], "jpeg");
    assert_eq!(
        (meta["width"].as_u64(), meta["height"].as_u64()),
        (Some(80), Some(120)),
        "orientation 6 turns it upright"
    );
    assert_eq!(meta["recipe_version"], "standard-1");
    let variants = meta["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    for v in variants {
        let file = out.join("photo.jpg").join(v["file"].as_str().unwrap());
        let img = image::open(&file).unwrap();
        assert_eq!(u64::from(img.width()), v["width"].as_u64().unwrap());
        assert_eq!(u64::from(img.height()), v["height"].as_u64().unwrap());
    }
    assert_eq!(
        json(&out.join("actually-png.jpg/metadata.json"))["format"],
        "png"
    );
    let err = json(&out.join("notes.jpg/error.json"));
    assert_eq!(err["code"], "unsupported-format");

    let ok = bin()
        .args(["process", "--out"])
        .arg(&out)
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn process_uses_the_recipe_from_the_config_file() {
    let dir = scratch("config");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        r##"
[recipe]
version = "custom-9"
[[recipe.variants]]
name = "card"
width = 50
height = 50
fit = "cover"
format = "webp"
quality = 70
watermark = true

[watermark]
text = "Example"
anchor = "bottom"
"##,
    )
    .unwrap();
    let photo = dir.join("p.png");
    std::fs::write(
        &photo,
        encode_with_image(&quadrants(), image::ImageFormat::Png),
    )
    .unwrap();
    let out = dir.join("out");
    let run = bin()
        .arg("--config")
        .arg(&config)
        .args(["process", "--out"])
        .arg(&out)
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let meta = json(&out.join("p.png/metadata.json"));
    assert_eq!(meta["recipe_version"], "custom-9");
    assert_eq!(meta["variants"][0]["watermarked"], true);
    let card = image::open(out.join("p.png/card.webp")).unwrap();
    assert_eq!((card.width(), card.height()), (50, 50));
}

#[test]
fn a_bad_config_exits_64_naming_the_key() {
    let dir = scratch("badconfig");
    let config = dir.join("config.toml");
    std::fs::write(&config, "[limits]\nmax_pixels = 0\n").unwrap();
    let photo = dir.join("p.png");
    std::fs::write(
        &photo,
        encode_with_image(
            &Raster::filled(4, 4, ec2_service::pipeline::Layout::Rgb, &[1, 2, 3]),
            image::ImageFormat::Png,
        ),
    )
    .unwrap();
    let run = bin()
        .arg("--config")
        .arg(&config)
        .args(["process", "--out"])
        .arg(dir.join("out"))
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&run.stderr).contains("limits.max_pixels"));
    let missing = bin()
        .args(["--config", "/nonexistent.toml", "process", "--out"])
        .arg(dir.join("out"))
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
}

/// Peak resident memory, in MiB, that `process` reports for one file.
fn peak_mib(dir: &Path, file: &Path) -> u64 {
    let out = bin()
        .args(["process", "--out"])
        .arg(dir.join("out"))
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let at = text.find("peak memory ").expect("peak memory line") + "peak memory ".len();
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_memory_estimate_bounds_the_measured_peak() {
    use ec2_service::pipeline::probe::probe;
    use ec2_service::pipeline::{Layout, Limits, Recipe, memory_estimate};
    use turbojpeg::Subsamp;

    use crate::planes::jpeg_of;

    let dir = scratch("memory");
    let limits = Limits::default();
    let recipe = Recipe::default();
    // The process's own footprint, from a tiny photo.
    let tiny = dir.join("tiny.jpg");
    std::fs::write(
        &tiny,
        jpeg_of(&quadrants_of(64, 48), Subsamp::Sub2x2, false),
    )
    .unwrap();
    let base = peak_mib(&dir, &tiny);
    let wide_png = {
        let mut r = quadrants_of(3000, 2000).to_rgba();
        for p in r.data.chunks_exact_mut(4).step_by(7) {
            p[3] = 100;
        }
        encode_with_image(&r, image::ImageFormat::Png)
    };
    let sources: Vec<(&str, Vec<u8>)> = vec![
        (
            "24 MP baseline JPEG turned by EXIF",
            jpeg_with_exif(
                &quadrants_of(6000, 4000),
                &ExifBuilder {
                    orientation: Some(6),
                    ..Default::default()
                },
            ),
        ),
        (
            "15 MP progressive 4:4:4 JPEG",
            jpeg_of(&quadrants_of(5120, 2880), Subsamp::None, true),
        ),
        ("6 MP PNG with alpha", wide_png),
        (
            "8 MP 4:2:2 JPEG",
            jpeg_of(
                &Raster::filled(3264, 2448, Layout::Rgb, &[40, 90, 200]),
                Subsamp::Sub2x1,
                false,
            ),
        ),
    ];
    for (name, bytes) in sources {
        let file = dir.join("source");
        std::fs::write(&file, &bytes).unwrap();
        let measured = (peak_mib(&dir, &file).saturating_sub(base) + 1) << 20;
        let header = probe(&bytes, &limits).unwrap();
        let estimate = memory_estimate(&header, &recipe, &limits);
        assert!(
            measured <= estimate + bytes.len() as u64,
            "{name}: measured {} MiB over the estimate of {} MiB",
            measured >> 20,
            estimate >> 20
        );
        // An estimate, not a blanket figure: within a few times the real peak.
        assert!(
            estimate <= 6 * measured + (64 << 20),
            "{name}: estimate {} MiB for a measured {} MiB",
            estimate >> 20,
            measured >> 20
        );
    }
}

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

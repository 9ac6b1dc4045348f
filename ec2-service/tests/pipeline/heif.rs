//! HEIC sources, made at test time and checked against the reference decoder:
//! Debian's `libheif-examples` (`heif-enc` writes the files, `heif-convert` decodes
//! them). `scripts/test` installs it; without it these tests say SKIPPED and check
//! nothing. Grids, as iPhones write them, are made with `heifer`'s encoder and decoded by
//! both.

use std::path::{Path, PathBuf};
use std::process::Command;

use ec2_service::pipeline::probe::probe;
use ec2_service::pipeline::{Fit, Limits, OutputFormat, Raster, Recipe, Rendered, render};

use crate::support::*;

const TOOLS: &str =
    "needs heif-enc and heif-convert (Debian's libheif-examples; scripts/test installs them)";

fn tools(test: &str) -> bool {
    let present = have_command("heif-enc") && have_command("heif-convert");
    if !present {
        skipped(test, TOOLS);
    }
    present
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run reference tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `heif-enc ARGS -o out input`, returning the file's bytes.
fn heif_enc(dir: &Path, input: &Path, args: &[&str], out: &str) -> Vec<u8> {
    let path = dir.join(out);
    run(Command::new("heif-enc")
        .args(args)
        .arg("-o")
        .arg(&path)
        .arg(input));
    std::fs::read(&path).expect("heif-enc output")
}

/// The reference decoder's pixels: `heif-convert` to PNG.
fn reference(dir: &Path, name: &str, bytes: &[u8]) -> Raster {
    let src = dir.join(name);
    std::fs::write(&src, bytes).unwrap();
    let png: PathBuf = dir.join(format!("{name}.png"));
    run(Command::new("heif-convert").arg(&src).arg(&png));
    decode(&std::fs::read(&png).expect("heif-convert output"))
}

/// Our render at full size (a PNG variant larger than the picture: never enlarged).
pub fn ours(bytes: &[u8]) -> (Rendered, Raster) {
    let r = recipe(vec![variant("full", 8192, Fit::Inside, OutputFormat::Png)]);
    let out = render(bytes, &r, &Limits::default(), None).unwrap_or_else(|e| panic!("{e}"));
    let pixels = decode(&out.variants[0].bytes);
    (out, pixels)
}

/// The 480x320 test scene, and it as an 8-bit and a 16-bit PNG in `dir` (the encoders'
/// inputs for 8-bit and for deeper outputs).
pub fn write_scene_pngs(dir: &Path) -> (Raster, PathBuf, PathBuf) {
    let picture = scene(480, 320);
    let png8 = write_png(dir, "scene8.png", &picture);
    let wide: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(480, 320, |x, y| {
            let p = picture.pixel(x, y);
            image::Rgb([p[0], p[1], p[2]].map(|v| u16::from(v) * 257))
        });
    let png16 = dir.join("scene16.png");
    wide.save(&png16).unwrap();
    (picture, png8, png16)
}

pub fn write_png(dir: &Path, name: &str, raster: &Raster) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, encode_with_image(raster, image::ImageFormat::Png)).unwrap();
    path
}

#[test]
fn heic_8_and_10_bit_match_the_reference_decoder() {
    if !tools("heic_8_and_10_bit_match_the_reference_decoder") {
        return;
    }
    let dir = scratch_dir("heic-depths");
    let (picture, png8, png16) = write_scene_pngs(&dir);
    for (name, input, args) in [
        ("8-bit", &png8, vec!["-q", "90"]),
        ("10-bit", &png16, vec!["-q", "90", "-b", "10"]),
    ] {
        let heic = heif_enc(&dir, input, &args, &format!("{name}.heic"));
        let expected = reference(&dir, name, &heic);
        let (out, pixels) = ours(&heic);
        assert_eq!(out.metadata.format.name(), "heic", "{name}");
        assert_eq!((out.metadata.width, out.metadata.height), (480, 320));
        let d = mean_difference(&pixels, &expected);
        assert!(d < 1.5, "{name}: differs from libheif by {d:.2}");
        // And it is the picture that went in (the codec's loss only).
        let d = mean_difference(&pixels, &picture);
        assert!(d < 4.0, "{name}: differs from the original by {d:.2}");
    }
}

/// Turns the file's `pixi` property (16 bytes, which nothing here needs) into an `irot`
/// or `imir` property of the same size, so the primary image gets that transform.
fn with_transform(heic: &[u8], kind: &[u8; 4], value: u8) -> Vec<u8> {
    let mut out = heic.to_vec();
    let at = out
        .windows(4)
        .position(|w| w == b"pixi")
        .expect("a pixi box")
        - 4;
    assert_eq!(&out[at..at + 4], &16u32.to_be_bytes(), "pixi of 16 bytes");
    out[at + 4..at + 8].copy_from_slice(kind);
    out[at + 8..at + 16].copy_from_slice(&[value, 0, 0, 0, 0, 0, 0, 0]);
    out
}

#[test]
fn heic_orientation_comes_from_the_container_and_is_applied_once() {
    if !tools("heic_orientation_comes_from_the_container_and_is_applied_once") {
        return;
    }
    use ec2_service::pipeline::orient::{Orientation, orient};
    let dir = scratch_dir("heic-orientation");
    // (container property, its value, the EXIF orientation that does the same)
    let cases: [(&[u8; 4], u8, u32); 5] = [
        (b"irot", 1, 8), // a quarter turn anti-clockwise
        (b"irot", 2, 3),
        (b"irot", 3, 6),
        (b"imir", 1, 2), // left-right
        (b"imir", 0, 4), // top-bottom
    ];
    for (kind, value, exif) in cases {
        let what = format!("{}={value}", String::from_utf8_lossy(kind));
        let inverse = match exif {
            6 => 8,
            8 => 6,
            other => other,
        };
        let stored = orient(
            quadrants_of(240, 160),
            Orientation::from_exif(Some(inverse)),
        );
        // The EXIF inside says 6 whatever the container does: a HEIF reader ignores it.
        let jpeg = jpeg_with_exif(
            &stored,
            &ExifBuilder {
                orientation: Some(6),
                make: Some("TestCam".into()),
                ..Default::default()
            },
        );
        let input = dir.join("stored.jpg");
        std::fs::write(&input, jpeg).unwrap();
        let plain = heif_enc(&dir, &input, &["-q", "92"], "stored.heic");
        let heic = with_transform(&plain, kind, value);
        let expected = reference(&dir, "turned", &heic);
        let (out, pixels) = ours(&heic);
        assert_eq!(
            (expected.width, expected.height),
            (240, 160),
            "{what}: libheif"
        );
        assert_eq!((pixels.width, pixels.height), (240, 160), "{what}");
        assert_eq!(u32::from(out.metadata.orientation), exif, "{what}: applied");
        assert_eq!(out.metadata.camera.make.as_deref(), Some("TestCam"));
        let d = mean_difference(&pixels, &expected);
        assert!(d < 2.0, "{what}: differs from libheif by {d:.2}");
        let q = |x0: u32, y0: u32| mean(&pixels, x0 + 20, y0 + 20, x0 + 100, y0 + 60);
        assert!(
            close(q(0, 0), [230, 20, 20], 16.0),
            "{what}: top-left {:?}",
            q(0, 0)
        );
        assert!(
            close(q(120, 0), [20, 200, 20], 16.0),
            "{what}: top-right {:?}",
            q(120, 0)
        );
        assert!(
            close(q(120, 80), [250, 250, 250], 16.0),
            "{what}: bottom-right"
        );
    }
}

/// A HEIC whose pixels are stored as 512x512 HEVC tiles of a grid, as iPhones write it,
/// with camera EXIF and GPS.
fn grid_heic(picture: &Raster) -> Vec<u8> {
    let exif = ExifBuilder {
        orientation: None,
        make: Some("Apple".into()),
        model: Some("iPhone 15".into()),
        gps: Some((48.8584, 2.2945)),
    }
    .build();
    let meta = heifer::Metadata {
        exif: Some(exif[6..].to_vec()),
        ..Default::default()
    };
    let rgba = picture.to_rgba();
    let image = heifer::Image::<u16> {
        width: picture.width,
        height: picture.height,
        bit_depth: 8,
        has_alpha: false,
        data: rgba.data.iter().map(|&v| u16::from(v)).collect(),
    };
    let options = heifer::EncodeOptions {
        quality: 92,
        ..Default::default()
    };
    heifer::encode_with_metadata(&image, &meta, &options).expect("heifer encodes")
}

#[test]
fn a_grid_heic_matches_the_reference_and_keeps_its_metadata() {
    if !tools("a_grid_heic_matches_the_reference_and_keeps_its_metadata") {
        return;
    }
    let dir = scratch_dir("heic-grid");
    let picture = scene(1100, 700);
    let heic = grid_heic(&picture);
    let file = heifer::heifer_isobmff::HeifFile::parse(&heic).unwrap();
    assert_eq!(&file.primary_item().unwrap().item_type.0, b"grid");
    let p = probe(&heic, &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (1100, 700), "size from the grid box");
    let expected = reference(&dir, "grid", &heic);
    let (out, pixels) = ours(&heic);
    assert_eq!((pixels.width, pixels.height), (1100, 700));
    let d = mean_difference(&pixels, &expected);
    assert!(d < 1.5, "differs from libheif by {d:.2}");
    assert!(mean_difference(&pixels, &picture) < 4.0);
    let m = &out.metadata;
    assert_eq!(m.orientation, 1);
    assert_eq!(m.camera.make.as_deref(), Some("Apple"));
    assert_eq!(m.camera.model.as_deref(), Some("iPhone 15"));
    let gps = m.gps.as_ref().expect("GPS read");
    assert!((gps.latitude - 48.8584).abs() < 1e-3 && (gps.longitude - 2.2945).abs() < 1e-3);
    // The standard recipe: JPEG variants, no GPS in them.
    let std = render(&heic, &Recipe::default(), &Limits::default(), None).unwrap();
    let sizes: Vec<_> = std.variants.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(sizes, [(1100, 700), (1024, 652), (320, 320)]);
    for v in &std.variants {
        assert!(!v.bytes.windows(4).any(|w| w == b"GPS\0" || w == b"Exif"));
    }
}

/// Every 4-byte occurrence of `tag` followed by a full-box header: width and height set.
pub fn patch_ispe(bytes: &mut [u8], width: u32, height: u32) -> usize {
    let mut patched = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(4).position(|w| w == b"ispe") {
        let p = at + i + 8; // after "ispe" and version/flags
        bytes[p..p + 4].copy_from_slice(&width.to_be_bytes());
        bytes[p + 4..p + 8].copy_from_slice(&height.to_be_bytes());
        patched += 1;
        at = p;
    }
    patched
}

#[test]
fn hostile_heic_ends_as_typed_errors() {
    // Made with heifer, so this runs without the reference tools too.
    let heic = grid_heic(&scene(600, 400));
    let small = {
        let mut r = Raster::filled(64, 48, ec2_service::pipeline::Layout::Rgb, &[1, 2, 3]);
        r.data[0] = 200;
        let rgba = r.to_rgba();
        heifer::encode_rgba8(64, 48, &rgba.data, &heifer::EncodeOptions::default()).unwrap()
    };
    let limits = Limits::default();
    let recipe = Recipe::default();
    // Truncated anywhere: a typed error (or, past the pixels, a render), never a panic.
    for len in (0..small.len()).step_by(29).chain([small.len() - 1]) {
        if let Err(e) = render(&small[..len], &recipe, &limits, None) {
            assert!(
                ["corrupt-image", "unsupported-format", "empty-source"].contains(&e.code()),
                "prefix {len}: {} {e}",
                e.code()
            );
        }
    }
    for len in [heic.len() / 3, heic.len() / 2, heic.len() - 100] {
        let e = render(&heic[..len], &recipe, &limits, None).unwrap_err();
        assert_eq!(e.code(), "corrupt-image", "grid cut at {len}: {e}");
    }
    // Headers claiming huge sizes are refused from the boxes, before any pixel.
    let mut huge = small.clone();
    assert!(patch_ispe(&mut huge, 60_000, 60_000) >= 1);
    let e = probe(&huge, &limits).unwrap_err();
    assert_eq!(e.code(), "dimensions-too-large", "{e}");
    let mut many = small.clone();
    patch_ispe(&mut many, 20_000, 20_000);
    let e = render(&many, &recipe, &limits, None).unwrap_err();
    assert_eq!(e.code(), "too-many-pixels", "{e}");
    // A header that lies within the limits: the decoder finds the picture does not
    // match and says so, allocating only for what the header allowed.
    let mut liar = small.clone();
    patch_ispe(&mut liar, 4000, 3000);
    if let Err(e) = render(&liar, &recipe, &limits, None) {
        assert_ne!(e.code(), "internal-error", "{e}");
    }
    // A box that claims to be larger than the file.
    let mut long_box = small.clone();
    if let Some(i) = long_box.windows(4).position(|w| w == b"meta") {
        long_box[i - 4..i].copy_from_slice(&u32::MAX.to_be_bytes());
    }
    assert_eq!(
        render(&long_box, &recipe, &limits, None)
            .unwrap_err()
            .code(),
        "corrupt-image"
    );
}

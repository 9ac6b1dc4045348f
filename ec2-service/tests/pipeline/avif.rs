//! AVIF sources, made at test time and checked against the reference decoder: Debian's
//! `libavif-bin` (`avifenc` writes the files with aom, rav1e or SVT-AV1, `avifdec`
//! decodes them). `scripts/test` installs it; without it these tests say SKIPPED and
//! check nothing, except the hostile files, which are made with our own encoder.

use std::path::Path;
use std::process::Command;

use ec2_service::pipeline::encode::encode;
use ec2_service::pipeline::probe::probe;
use ec2_service::pipeline::{Fit, Layout, Limits, OutputFormat, Raster, Recipe, render};

use super::heif::{ours, patch_ispe, run, write_png, write_scene_pngs};
use crate::support::*;

const TOOLS: &str = "needs avifenc and avifdec (Debian's libavif-bin; scripts/test installs them)";

fn tools(test: &str) -> bool {
    let present = have_command("avifenc") && have_command("avifdec");
    if !present {
        skipped(test, TOOLS);
    }
    present
}

/// `avifenc ARGS input out`, returning the file's bytes.
fn avifenc(dir: &Path, input: &Path, args: &[&str], out: &str) -> Vec<u8> {
    let path = dir.join(out);
    run(Command::new("avifenc").args(args).arg(input).arg(&path));
    std::fs::read(&path).expect("avifenc output")
}

/// The reference decoder's pixels, as stored (avifdec applies no crop or transform).
fn reference(dir: &Path, name: &str, bytes: &[u8]) -> Raster {
    let src = dir.join(name);
    std::fs::write(&src, bytes).unwrap();
    let png = dir.join(format!("{name}.png"));
    run(Command::new("avifdec")
        .args(["-d", "8"])
        .arg(&src)
        .arg(&png));
    decode(&std::fs::read(&png).expect("avifdec output"))
}

const Q: [&str; 4] = ["--min", "8", "--max", "8"];

#[test]
fn avif_of_each_depth_subsampling_and_encoder_matches_the_reference_decoder() {
    if !tools("avif_of_each_depth_subsampling_and_encoder_matches_the_reference_decoder") {
        return;
    }
    let dir = scratch_dir("avif-depths");
    let (picture, png8, png16) = write_scene_pngs(&dir);
    let cases: [(&str, &Path, &[&str]); 6] = [
        (
            "aom 8-bit 4:2:0",
            &png8,
            &["-c", "aom", "-y", "420", "-d", "8"],
        ),
        (
            "aom 8-bit 4:4:4",
            &png8,
            &["-c", "aom", "-y", "444", "-d", "8"],
        ),
        (
            "aom 10-bit 4:2:0",
            &png16,
            &["-c", "aom", "-y", "420", "-d", "10"],
        ),
        (
            "aom 12-bit 4:2:2",
            &png16,
            &["-c", "aom", "-y", "422", "-d", "12"],
        ),
        (
            "rav1e 8-bit 4:2:0",
            &png8,
            &["-c", "rav1e", "-y", "420", "-d", "8"],
        ),
        (
            "svt 10-bit 4:2:0",
            &png16,
            &["-c", "svt", "-y", "420", "-d", "10"],
        ),
    ];
    for (i, (name, input, args)) in cases.into_iter().enumerate() {
        let args = [args, &Q[..]].concat();
        let avif = avifenc(&dir, input, &args, &format!("{i}.avif"));
        let expected = reference(&dir, &format!("{i}"), &avif);
        let (out, pixels) = ours(&avif);
        assert_eq!(out.metadata.format.name(), "avif", "{name}");
        assert_eq!(
            (out.metadata.width, out.metadata.height),
            (480, 320),
            "{name}"
        );
        let d = mean_difference(&pixels, &expected);
        assert!(d < 1.0, "{name}: differs from avifdec by {d:.2}");
        // And it is the picture that went in (the codec's loss only).
        let d = mean_difference(&pixels, &picture);
        assert!(d < 4.0, "{name}: differs from the original by {d:.2}");
    }
}

#[test]
fn avif_orientation_and_crop_come_from_the_container_and_are_applied_once() {
    if !tools("avif_orientation_and_crop_come_from_the_container_and_are_applied_once") {
        return;
    }
    use ec2_service::pipeline::orient::{Orientation, orient};
    let dir = scratch_dir("avif-orientation");
    // (avifenc's flags, the EXIF orientation that does the same)
    let cases: [(&[&str], u32); 6] = [
        (&[], 1),
        (&["--irot", "1"], 8), // a quarter turn anti-clockwise
        (&["--irot", "2"], 3),
        (&["--irot", "3"], 6),
        (&["--imir", "1"], 2), // left-right
        (&["--imir", "0"], 4), // top-bottom
    ];
    for (flags, exif) in cases {
        let what = format!("{flags:?}");
        let inverse = match exif {
            6 => 8,
            8 => 6,
            other => other,
        };
        let stored = orient(
            quadrants_of(240, 160),
            Orientation::from_exif(Some(inverse)),
        );
        let input = write_png(&dir, "stored.png", &stored);
        let args = [flags, &["-y", "444"], &Q[..]].concat();
        let avif = avifenc(&dir, &input, &args, "turned.avif");
        let (out, pixels) = ours(&avif);
        assert_eq!((pixels.width, pixels.height), (240, 160), "{what}");
        assert_eq!(u32::from(out.metadata.orientation), exif, "{what}: applied");
        assert!(
            mean_difference(&pixels, &quadrants_of(240, 160)) < 3.0,
            "{what}"
        );
    }
    // A clean aperture: 200x100 of the 300x200 picture, centred then moved 20 left and
    // 10 down (offsets from the centre, in pixels).
    let picture = scene(300, 200);
    let input = write_png(&dir, "scene.png", &picture);
    let args = [&["-y", "444", "--clap", "200,1,100,1,-20,1,10,1"], &Q[..]].concat();
    let avif = avifenc(&dir, &input, &args, "clap.avif");
    let p = probe(&avif, &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (200, 100), "size after the crop");
    let (out, pixels) = ours(&avif);
    assert_eq!((out.metadata.width, out.metadata.height), (200, 100));
    let kept = Raster::new(
        200,
        100,
        Layout::Rgb,
        (60..160)
            .flat_map(|y| (30..230).flat_map(move |x| [x, y]))
            .collect::<Vec<u32>>()
            .chunks(2)
            .flat_map(|xy| picture.pixel(xy[0], xy[1]).to_vec())
            .collect(),
    );
    let d = mean_difference(&pixels, &kept);
    assert!(
        d < 3.0,
        "the crop is not the clean aperture: differs by {d:.2}"
    );
}

#[test]
fn a_grid_avif_with_alpha_and_exif_matches_the_reference() {
    if !tools("a_grid_avif_with_alpha_and_exif_matches_the_reference") {
        return;
    }
    let dir = scratch_dir("avif-grid");
    // A picture whose right third is half transparent.
    let scene = scene(1100, 700);
    let mut rgba = scene.to_rgba();
    for (i, p) in rgba.data.chunks_exact_mut(4).enumerate() {
        if i as u32 % 1100 >= 733 {
            p[3] = 128;
        }
    }
    let input = write_png(&dir, "alpha.png", &rgba);
    let exif = ExifBuilder {
        orientation: None,
        make: Some("TestCam".into()),
        model: Some("AV1".into()),
        gps: Some((48.8584, 2.2945)),
    }
    .build();
    let exif_path = dir.join("exif.bin");
    std::fs::write(&exif_path, &exif[6..]).unwrap();
    let args = [
        &["--grid", "2x2", "-y", "420", "--exif"],
        &[exif_path.to_str().unwrap()][..],
        &Q[..],
    ]
    .concat();
    let avif = avifenc(&dir, &input, &args, "grid.avif");
    let file = heifer::heifer_isobmff::HeifFile::parse(&avif).unwrap();
    assert_eq!(&file.primary_item().unwrap().item_type.0, b"grid");
    let p = probe(&avif, &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (1100, 700), "size from the grid box");
    let expected = reference(&dir, "grid", &avif);
    let (out, pixels) = ours(&avif);
    assert_eq!(pixels.layout, Layout::Rgba, "alpha kept");
    assert_eq!((pixels.width, pixels.height), (1100, 700));
    let d = mean_difference(&pixels, &expected);
    assert!(d < 1.0, "differs from avifdec by {d:.2}");
    assert!(pixels.pixel(100, 100)[3] == 255 && pixels.pixel(1000, 600)[3].abs_diff(128) <= 2);
    let m = &out.metadata;
    assert_eq!(m.camera.make.as_deref(), Some("TestCam"));
    let gps = m.gps.as_ref().expect("GPS read");
    assert!((gps.latitude - 48.8584).abs() < 1e-3 && (gps.longitude - 2.2945).abs() < 1e-3);
    // The standard recipe: JPEG variants (alpha flattened), no GPS in them.
    let std = render(&avif, &Recipe::default(), &Limits::default(), None).unwrap();
    let sizes: Vec<_> = std.variants.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(sizes, [(1100, 700), (1024, 652), (320, 320)]);
    for v in &std.variants {
        assert!(!v.bytes.windows(4).any(|w| w == b"GPS\0" || w == b"Exif"));
    }
}

#[test]
fn avif_colors_are_brought_to_srgb_and_hdr_is_refused() {
    if !tools("avif_colors_are_brought_to_srgb_and_hdr_is_refused") {
        return;
    }
    let dir = scratch_dir("avif-colors");
    let red = Raster::filled(64, 64, Layout::Rgb, &[200, 40, 40]);
    let input = write_png(&dir, "red.png", &red);
    let lossless = ["-y", "444", "--min", "0", "--max", "0"];
    let render_color = |cicp: &str, name: &str| {
        let args = [&lossless[..], &["--cicp", cicp]].concat();
        let avif = avifenc(&dir, &input, &args, name);
        render(
            &avif,
            &recipe(vec![variant("full", 64, Fit::Inside, OutputFormat::Png)]),
            &Limits::default(),
            None,
        )
    };
    // sRGB (BT.709 primaries, sRGB transfer): left alone.
    let srgb = render_color("1/13/6", "srgb.avif").unwrap();
    assert!(close(
        mean(&decode(&srgb.variants[0].bytes), 8, 8, 56, 56),
        [200, 40, 40],
        2.0
    ));
    // Display P3: its red is outside sRGB, so in sRGB numbers it comes out redder.
    let p3 = render_color("12/13/6", "p3.avif").unwrap();
    assert!(p3.metadata.converted_to_srgb, "P3 converted");
    let m = mean(&decode(&p3.variants[0].bytes), 8, 8, 56, 56);
    assert!(m[0] > 210.0 && m[1] < 40.0, "P3 red in sRGB: {m:?}");
    // PQ (HDR): refused, not rendered with wrong colors.
    let e = render_color("9/16/9", "pq.avif").unwrap_err();
    assert_eq!(e.code(), "unsupported-format");
    assert!(e.to_string().contains("HDR"), "{e}");
}

#[test]
fn hostile_avif_ends_as_typed_errors() {
    // Made with our own encoder (rav1e), so this runs without the reference tools too.
    let mut picture = Raster::filled(64, 48, Layout::Rgb, &[10, 120, 200]);
    picture.data[0] = 250;
    let small = encode(&picture, OutputFormat::Avif, 80, [255, 255, 255]).unwrap();
    let limits = Limits::default();
    let recipe = Recipe::default();
    let (out, pixels) = ours(&small);
    assert_eq!((out.metadata.width, out.metadata.height), (64, 48));
    assert!(close(mean(&pixels, 8, 8, 56, 40), [10, 120, 200], 4.0));
    // Truncated anywhere: a typed error (or, past the pixels, a render), never a panic.
    for len in (0..small.len()).step_by(7).chain([small.len() - 1]) {
        if let Err(e) = render(&small[..len], &recipe, &limits, None) {
            assert!(
                ["corrupt-image", "unsupported-format", "empty-source"].contains(&e.code()),
                "prefix {len}: {} {e}",
                e.code()
            );
        }
    }
    let e = render(&small[..small.len() - 8], &recipe, &limits, None).unwrap_err();
    assert_eq!(e.code(), "corrupt-image", "cut in the pixels: {e}");
    // Headers claiming huge sizes are refused from the boxes, before any pixel.
    let mut huge = small.clone();
    assert!(patch_ispe(&mut huge, 60_000, 60_000) >= 1);
    assert_eq!(
        probe(&huge, &limits).unwrap_err().code(),
        "dimensions-too-large"
    );
    let mut many = small.clone();
    patch_ispe(&mut many, 20_000, 20_000);
    let e = render(&many, &recipe, &limits, None).unwrap_err();
    assert_eq!(e.code(), "too-many-pixels", "{e}");
    // A container that claims less than its AV1 stream holds: refused before the
    // decoder allocates for the larger frame.
    let mut liar = small.clone();
    patch_ispe(&mut liar, 32, 24);
    let e = render(&liar, &recipe, &limits, None).unwrap_err();
    assert_eq!(e.code(), "corrupt-image", "{e}");
    assert!(e.to_string().contains("larger than its ispe"), "{e}");
    // One that claims more: the decoder finds the frame does not match.
    let mut grown = small.clone();
    patch_ispe(&mut grown, 4000, 3000);
    let e = render(&grown, &recipe, &limits, None).unwrap_err();
    assert_eq!(e.code(), "corrupt-image", "{e}");
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

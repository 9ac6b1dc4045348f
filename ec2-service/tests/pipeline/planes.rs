//! The JPEG fast path (YCbCr planes from decode to encode): the same pictures as the
//! RGB path, upright in all eight orientations, and outputs that are still 4:2:0 JPEGs
//! with optimised Huffman tables at the recipe's quality.

use ec2_service::pipeline::orient::{Orientation, orient};
use ec2_service::pipeline::{Fit, Limits, OutputFormat, Raster, Recipe, render};
use turbojpeg::Subsamp;

use crate::support::*;

/// The same variants as JPEG (fast path) and as PNG (RGB path).
fn both(variants: &[(&str, u32, Fit)]) -> (Recipe, Recipe) {
    let make = |format| {
        recipe(
            variants
                .iter()
                .map(|&(name, side, fit)| variant(name, side, fit, format))
                .collect(),
        )
    };
    (make(OutputFormat::Jpeg), make(OutputFormat::Png))
}

#[test]
fn planes_give_the_pictures_of_the_rgb_path() {
    let picture = scene(900, 600);
    let (jpeg, png) = both(&[
        ("large", 500, Fit::Inside),
        ("medium", 251, Fit::Inside),
        ("thumb", 96, Fit::Cover),
    ]);
    for (name, subsamp, progressive) in [
        ("4:2:0", Subsamp::Sub2x2, false),
        ("4:2:2", Subsamp::Sub2x1, false),
        ("4:4:4 progressive", Subsamp::None, true),
        ("4:4:0", Subsamp::Sub1x2, false),
    ] {
        let source = jpeg_of(&picture, subsamp, progressive);
        let fast = render(&source, &jpeg, &Limits::default(), None).unwrap();
        let slow = render(&source, &png, &Limits::default(), None).unwrap();
        assert_eq!(fast.metadata.perceptual_hash.len(), 16);
        for (f, s) in fast.variants.iter().zip(&slow.variants) {
            assert_eq!(
                (f.width, f.height),
                (s.width, s.height),
                "{name} {}",
                f.name
            );
            let d = mean_difference(&decode(&f.bytes), &decode(&s.bytes));
            // The JPEG encode (quality 90) is the only difference.
            assert!(
                d < 2.0,
                "{name} {}: differs from the RGB path by {d:.2}",
                f.name
            );
        }
        assert_eq!(
            fast.metadata.dominant_color.len(),
            slow.metadata.dominant_color.len()
        );
    }
}

#[test]
fn planes_come_out_upright_in_all_eight_orientations() {
    let (jpeg, _) = both(&[("small", 60, Fit::Inside), ("square", 30, Fit::Cover)]);
    for o in 1..=8u32 {
        let inverse = match o {
            6 => 8,
            8 => 6,
            other => other,
        };
        let stored = orient(quadrants(), Orientation::from_exif(Some(inverse)));
        let source = jpeg_with_exif(
            &stored,
            &ExifBuilder {
                orientation: Some(o as u16),
                ..Default::default()
            },
        );
        let out = render(&source, &jpeg, &Limits::default(), None).unwrap();
        assert_eq!((out.metadata.width, out.metadata.height), (120, 80), "{o}");
        let small = decode(&out.variants[0].bytes);
        assert_eq!((small.width, small.height), (60, 40), "orientation {o}");
        let q = |x0: u32, y0: u32| mean(&small, x0 + 6, y0 + 4, x0 + 24, y0 + 16);
        assert!(
            close(q(0, 0), [230, 20, 20], 14.0),
            "{o}: top-left {:?}",
            q(0, 0)
        );
        assert!(
            close(q(30, 0), [20, 200, 20], 14.0),
            "{o}: top-right {:?}",
            q(30, 0)
        );
        assert!(
            close(q(0, 20), [20, 20, 230], 14.0),
            "{o}: bottom-left {:?}",
            q(0, 20)
        );
        let square = decode(&out.variants[1].bytes);
        // The centre crop of a 3:2 picture keeps the two halves left and right.
        let left = mean(&square, 2, 2, 12, 12);
        assert!(
            close(left, [230, 20, 20], 20.0),
            "{o}: square top-left {left:?}"
        );
    }
}

/// The segments of a JPEG before its first scan: (marker, body).
fn segments(jpeg: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && jpeg[at + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        out.push((jpeg[at + 1], &jpeg[at + 4..at + 2 + len]));
        at += 2 + len;
    }
    out
}

#[test]
fn outputs_are_4_2_0_with_optimised_huffman_tables_at_the_recipe_quality() {
    let source = jpeg_of(&scene(800, 533), Subsamp::None, true);
    let out = render(&source, &Recipe::default(), &Limits::default(), None).unwrap();
    let reference = |q: i32, r: &Raster| {
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(q).unwrap();
        c.set_subsamp(Subsamp::Sub2x2).unwrap();
        c.compress_to_vec(turbojpeg::Image {
            pixels: r.data.as_slice(),
            width: r.width as usize,
            pitch: r.row_bytes(),
            height: r.height as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap()
    };
    // The standard (Annex K) luminance DC table: optimised tables differ from it.
    let standard_dc = [0u8, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    for (v, quality) in out.variants.iter().zip([85, 82, 80]) {
        let segs = segments(&v.bytes);
        let sof = segs
            .iter()
            .find(|(m, _)| *m == 0xC0)
            .expect("baseline SOF0")
            .1;
        assert_eq!(sof[5], 3, "{}: three components", v.name);
        let sampling: Vec<u8> = (0..3).map(|i| sof[7 + 3 * i]).collect();
        assert_eq!(sampling, [0x22, 0x11, 0x11], "{}: 4:2:0", v.name);
        for (_, dht) in segs.iter().filter(|(m, _)| *m == 0xC4) {
            assert_ne!(&dht[1..17], &standard_dc, "{}: optimised tables", v.name);
        }
        // Same quantisation tables as libjpeg-turbo's own encoder at that quality.
        let mine: Vec<&[u8]> = segs
            .iter()
            .filter(|(m, _)| *m == 0xDB)
            .map(|s| s.1)
            .collect();
        let pixels = decode(&v.bytes).flatten([255, 255, 255]);
        let theirs_bytes = reference(quality, &pixels);
        let theirs: Vec<&[u8]> = segments(&theirs_bytes)
            .into_iter()
            .filter(|(m, _)| *m == 0xDB)
            .map(|s| s.1)
            .collect();
        assert_eq!(mine, theirs, "{}: quality {quality}", v.name);
    }
}

/// (Here, not in `support`: the workspace's e2e tests share `support` without turbojpeg.)
/// A JPEG of `raster` with the given chroma subsampling, baseline or progressive.
pub fn jpeg_of(raster: &Raster, subsamp: turbojpeg::Subsamp, progressive: bool) -> Vec<u8> {
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_quality(92).unwrap();
    c.set_subsamp(subsamp).unwrap();
    c.set_progressive(progressive).unwrap();
    c.compress_to_vec(turbojpeg::Image {
        pixels: raster.data.as_slice(),
        width: raster.width as usize,
        pitch: raster.row_bytes(),
        height: raster.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    })
    .unwrap()
}

use ec2_service::pipeline::orient::{Orientation, orient};
use ec2_service::pipeline::{
    Anchor, Fit, Layout, Limits, Mark, OutputFormat, Raster, Recipe, Watermark, render,
};
use turbojpeg::{Compressor, Image as TjImage, PixelFormat, Subsamp};

use crate::support::*;

fn small_recipe() -> Recipe {
    recipe(vec![variant("small", 60, Fit::Inside, OutputFormat::Png)])
}

/// Checks the four quadrant colors of an upright 3:2 rendering of [`quadrants`].
fn assert_upright(r: &Raster, what: &str) {
    let (w, h) = (r.width, r.height);
    assert!(w > h, "{what}: {w}x{h} is not landscape");
    let q = |x0, y0| mean(r, x0 + w / 8, y0 + h / 8, x0 + w * 3 / 8, y0 + h * 3 / 8);
    let (tl, tr, bl, br) = (q(0, 0), q(w / 2, 0), q(0, h / 2), q(w / 2, h / 2));
    assert!(close(tl, [230, 20, 20], 12.0), "{what}: top-left {tl:?}");
    assert!(close(tr, [20, 200, 20], 12.0), "{what}: top-right {tr:?}");
    assert!(close(bl, [20, 20, 230], 12.0), "{what}: bottom-left {bl:?}");
    assert!(
        close(br, [250, 250, 250], 12.0),
        "{what}: bottom-right {br:?}"
    );
}

/// The stored pixels that orientation `o` turns into `upright`.
fn stored_for(upright: &Raster, o: u32) -> Raster {
    let inverse = match o {
        6 => 8,
        8 => 6,
        other => other,
    };
    orient(upright.clone(), Orientation::from_exif(Some(inverse)))
}

#[test]
fn every_exif_orientation_comes_out_upright_exactly_once() {
    for o in 1..=8u32 {
        let stored = stored_for(&quadrants(), o);
        let jpeg = jpeg_with_exif(
            &stored,
            &ExifBuilder {
                orientation: Some(o as u16),
                ..Default::default()
            },
        );
        let out = render(&jpeg, &small_recipe(), &Limits::default(), None).unwrap();
        assert_eq!(out.metadata.orientation, o as u16);
        assert_eq!(
            (out.metadata.width, out.metadata.height),
            (120, 80),
            "orientation {o}"
        );
        let v = &out.variants[0];
        assert_eq!((v.width, v.height), (60, 40), "orientation {o}");
        assert_upright(&decode(&v.bytes), &format!("orientation {o}"));
    }
}

#[test]
fn invalid_orientation_values_are_taken_as_upright() {
    for o in [0u16, 9, 65535] {
        let jpeg = jpeg_with_exif(
            &quadrants(),
            &ExifBuilder {
                orientation: Some(o),
                ..Default::default()
            },
        );
        let out = render(&jpeg, &small_recipe(), &Limits::default(), None).unwrap();
        assert_eq!(out.metadata.orientation, 1);
        assert_upright(&decode(&out.variants[0].bytes), &format!("orientation {o}"));
    }
}

#[test]
fn every_input_format_renders() {
    let rgb = quadrants();
    let mut rgba = rgb.to_rgba();
    for p in rgba.data.chunks_exact_mut(4).take(120 * 10) {
        p[3] = 0; // a transparent band at the top
    }
    let webp_lossy = webp::Encoder::from_rgb(&rgb.data, rgb.width, rgb.height)
        .encode(90.0)
        .to_vec();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "png",
            encode_with_image(&rgb, image::ImageFormat::Png),
            false,
        ),
        (
            "png-alpha",
            encode_with_image(&rgba, image::ImageFormat::Png),
            true,
        ),
        ("png-16-bit", png_16_bit(&rgb), false),
        (
            "gif",
            encode_with_image(&rgb, image::ImageFormat::Gif),
            false,
        ),
        (
            "webp-lossless-alpha",
            encode_with_image(&rgba, image::ImageFormat::WebP),
            true,
        ),
        ("webp-lossy", webp_lossy, false),
        (
            "tiff",
            encode_with_image(&rgb, image::ImageFormat::Tiff),
            false,
        ),
        (
            "bmp",
            encode_with_image(&rgb, image::ImageFormat::Bmp),
            false,
        ),
        ("jpeg-progressive", progressive_jpeg(&rgb), false),
    ];
    for (name, bytes, alpha) in cases {
        let out = render(&bytes, &small_recipe(), &Limits::default(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (out.metadata.width, out.metadata.height),
            (120, 80),
            "{name}"
        );
        assert_eq!(out.metadata.has_alpha, alpha, "{name}");
        let v = decode(&out.variants[0].bytes);
        assert_eq!(
            v.layout == Layout::Rgba,
            alpha,
            "{name}: PNG variant keeps alpha only if used"
        );
        // Compare below the transparent band.
        let bl = mean(&v, 5, 25, 25, 35);
        assert!(close(bl, [20, 20, 230], 30.0), "{name}: bottom-left {bl:?}");
    }
}

fn png_16_bit(rgb: &Raster) -> Vec<u8> {
    let wide: Vec<u16> = rgb.data.iter().map(|v| u16::from(*v) * 257).collect();
    let img =
        image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(rgb.width, rgb.height, wide).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb16(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn progressive_jpeg(rgb: &Raster) -> Vec<u8> {
    let mut c = Compressor::new().unwrap();
    c.set_quality(90).unwrap();
    c.set_progressive(true).unwrap();
    c.compress_to_vec(TjImage {
        pixels: rgb.data.as_slice(),
        width: rgb.width as usize,
        pitch: rgb.row_bytes(),
        height: rgb.height as usize,
        format: PixelFormat::RGB,
    })
    .unwrap()
}

#[test]
fn animated_gif_renders_its_first_frame_and_counts_frames() {
    use image::codecs::gif::GifEncoder;
    let frame = |rgb: [u8; 3]| {
        let buf = image::RgbaImage::from_pixel(40, 30, image::Rgba([rgb[0], rgb[1], rgb[2], 255]));
        image::Frame::new(buf)
    };
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        enc.encode_frames(vec![
            frame([250, 0, 0]),
            frame([0, 0, 250]),
            frame([0, 250, 0]),
        ])
        .unwrap();
    }
    let out = render(&bytes, &small_recipe(), &Limits::default(), None).unwrap();
    assert_eq!(out.metadata.frames, 3);
    let v = decode(&out.variants[0].bytes);
    assert!(close(mean(&v, 0, 0, v.width, v.height), [250, 0, 0], 10.0));
}

#[test]
fn cmyk_jpeg_comes_out_in_plausible_srgb() {
    // Adobe convention: stored CMYK is inverted (255 = no ink). Inks: pure cyan, pure
    // magenta, pure yellow, no ink; in quadrants.
    let (w, h) = (64usize, 64usize);
    let mut cmyk = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let ink: [u8; 4] = match (x < w / 2, y < h / 2) {
                (true, true) => [255, 0, 0, 0],
                (false, true) => [0, 255, 0, 0],
                (true, false) => [0, 0, 255, 0],
                (false, false) => [0, 0, 0, 0],
            };
            cmyk.extend(ink.map(|v| 255 - v));
        }
    }
    let mut c = Compressor::new().unwrap();
    c.set_quality(95).unwrap();
    c.set_subsamp(Subsamp::None).unwrap();
    let jpeg = c
        .compress_to_vec(TjImage {
            pixels: cmyk.as_slice(),
            width: w,
            pitch: w * 4,
            height: h,
            format: PixelFormat::CMYK,
        })
        .unwrap();
    let out = render(&jpeg, &small_recipe(), &Limits::default(), None).unwrap();
    assert!(out.metadata.converted_to_srgb);
    let v = decode(&out.variants[0].bytes);
    let q = |x0: u32, y0: u32| mean(&v, x0 + 5, y0 + 5, x0 + 25, y0 + 25);
    assert!(close(q(0, 0), [0, 255, 255], 20.0), "cyan {:?}", q(0, 0));
    assert!(
        close(q(30, 0), [255, 0, 255], 20.0),
        "magenta {:?}",
        q(30, 0)
    );
    assert!(
        close(q(0, 30), [255, 255, 0], 20.0),
        "yellow {:?}",
        q(0, 30)
    );
    assert!(
        close(q(30, 30), [255, 255, 255], 20.0),
        "paper {:?}",
        q(30, 30)
    );
}

#[test]
fn wide_gamut_png_is_converted_to_srgb() {
    use image::ImageEncoder;
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let red = Raster::filled(32, 32, Layout::Rgb, &[255, 0, 0]);
    let mut bytes = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut bytes);
    enc.set_icc_profile(p3).unwrap();
    enc.write_image(&red.data, 32, 32, image::ExtendedColorType::Rgb8)
        .unwrap();
    let out = render(&bytes, &small_recipe(), &Limits::default(), None).unwrap();
    assert!(out.metadata.converted_to_srgb);
    assert!(out.metadata.icc_description.is_some());
    // P3's pure red is outside sRGB: it clips to sRGB red rather than staying a
    // "dull" (unconverted) value; green and blue must not rise.
    let v = decode(&out.variants[0].bytes);
    let m = mean(&v, 0, 0, 32, 32);
    assert!(m[0] > 240.0 && m[1] < 30.0 && m[2] < 30.0, "{m:?}");
}

#[test]
fn inside_never_enlarges_and_keeps_aspect_cover_is_exactly_the_box() {
    let r = recipe(vec![
        variant("big", 2048, Fit::Inside, OutputFormat::Jpeg),
        variant("half", 60, Fit::Inside, OutputFormat::Jpeg),
        variant("square", 50, Fit::Cover, OutputFormat::Jpeg),
        variant("huge-square", 400, Fit::Cover, OutputFormat::Webp),
    ]);
    let bytes = encode_with_image(&quadrants(), image::ImageFormat::Png);
    let out = render(&bytes, &r, &Limits::default(), None).unwrap();
    let sizes: Vec<_> = out
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    assert_eq!(
        sizes,
        [
            ("big", 120, 80),
            ("half", 60, 40),
            ("square", 50, 50),
            ("huge-square", 400, 400)
        ]
    );
    for v in &out.variants {
        let d = decode(&v.bytes);
        assert_eq!((d.width, d.height), (v.width, v.height), "{}", v.name);
    }
    // The cover crop is centred: its left edge is still red/blue, right edge green/white.
    let sq = decode(&out.variants[2].bytes);
    assert!(close(mean(&sq, 2, 2, 10, 10), [230, 20, 20], 20.0));
    assert!(close(mean(&sq, 40, 40, 48, 48), [250, 250, 250], 20.0));
}

#[test]
fn watermark_lands_where_asked_and_only_on_variants_that_ask() {
    let mut r = recipe(vec![
        variant("marked", 2048, Fit::Inside, OutputFormat::Png),
        variant("clean", 2048, Fit::Inside, OutputFormat::Png),
    ]);
    r.variants[0].watermark = true;
    let wm = Watermark {
        mark: Mark::Image(Raster::filled(8, 8, Layout::Rgba, &[0, 0, 0, 255])),
        anchor: Anchor::TopRight,
        margin_fraction: 0.05,
        opacity: 1.0,
        width_fraction: 0.1,
    };
    let source = Raster::filled(400, 200, Layout::Rgb, &[255, 255, 255]);
    let bytes = encode_with_image(&source, image::ImageFormat::Png);
    let out = render(&bytes, &r, &Limits::default(), Some(&wm)).unwrap();
    assert!(out.variants[0].watermarked && !out.variants[1].watermarked);
    let marked = decode(&out.variants[0].bytes);
    // 40x40 mark, 20 px margin: x 340..380, y 20..60.
    assert!(close(mean(&marked, 345, 25, 375, 55), [0, 0, 0], 2.0));
    assert!(close(mean(&marked, 0, 0, 330, 200), [255, 255, 255], 1.0));
    assert!(close(
        mean(&marked, 340, 65, 400, 200),
        [255, 255, 255],
        1.0
    ));
    let clean = decode(&out.variants[1].bytes);
    assert!(close(mean(&clean, 0, 0, 400, 200), [255, 255, 255], 0.5));
}

#[test]
fn camera_fields_and_gps_go_to_the_record_never_to_a_variant() {
    let exif = ExifBuilder {
        orientation: Some(1),
        make: Some("TestCam".into()),
        model: Some("Model 7".into()),
        gps: Some((48.8583, -2.2945)),
    };
    let jpeg = jpeg_with_exif(&quadrants(), &exif);
    let r = recipe(vec![
        variant("j", 100, Fit::Inside, OutputFormat::Jpeg),
        variant("w", 100, Fit::Inside, OutputFormat::Webp),
        variant("p", 100, Fit::Inside, OutputFormat::Png),
        variant("a", 100, Fit::Inside, OutputFormat::Avif),
    ]);
    let out = render(&jpeg, &r, &Limits::default(), None).unwrap();
    let m = &out.metadata;
    assert_eq!(m.camera.make.as_deref(), Some("TestCam"));
    assert_eq!(m.camera.model.as_deref(), Some("Model 7"));
    let gps = m.gps.as_ref().expect("gps");
    assert!(
        (gps.latitude - 48.8583).abs() < 1e-4 && (gps.longitude + 2.2945).abs() < 1e-4,
        "{gps:?}"
    );
    for v in &out.variants {
        for needle in [b"Exif".as_slice(), b"TestCam", b"eXIf", b"GPS"] {
            assert!(
                !v.bytes.windows(needle.len()).any(|w| w == needle),
                "{} variant carries {:?}",
                v.name,
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert_eq!(m.sha256.len(), 64);
    assert_eq!(m.perceptual_hash.len(), 16);
    assert!(m.dominant_color.starts_with('#') && m.dominant_color.len() == 7);
    assert!(m.blur_hash.len() >= 20);
}

#[test]
fn bombs_are_refused_from_the_header() {
    // A 16x16 JPEG whose frame header is patched to 65500x65500.
    let mut jpeg = encode_with_image(
        &Raster::filled(16, 16, Layout::Rgb, &[9, 9, 9]),
        image::ImageFormat::Jpeg,
    );
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
    // A PNG whose IHDR says 50000x50000 (CRC is not checked before the limits).
    let mut png = encode_with_image(
        &Raster::filled(8, 8, Layout::Rgb, &[9, 9, 9]),
        image::ImageFormat::Png,
    );
    png[16..24].copy_from_slice(&[0, 0, 0xC3, 0x50, 0, 0, 0xC3, 0x50]);
    let cases = [
        ("jpeg", jpeg, "dimensions-too-large"),
        ("png", png, "dimensions-too-large"),
    ];
    for (name, bytes, code) in cases {
        let started = std::time::Instant::now();
        let err = render(&bytes, &small_recipe(), &Limits::default(), None).unwrap_err();
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(
            started.elapsed().as_millis() < 1000,
            "refused from the header, not by decoding"
        );
    }
    let tight = Limits {
        max_pixels: 1000,
        ..Limits::default()
    };
    let ok_size = encode_with_image(&quadrants(), image::ImageFormat::Png);
    assert_eq!(
        render(&ok_size, &small_recipe(), &tight, None)
            .unwrap_err()
            .code(),
        "too-many-pixels"
    );
}

#[test]
fn broken_files_are_typed_errors() {
    let good = encode_with_image(&quadrants(), image::ImageFormat::Jpeg);
    let truncated = &good[..good.len() / 2];
    assert_eq!(
        render(truncated, &small_recipe(), &Limits::default(), None)
            .unwrap_err()
            .code(),
        "corrupt-image"
    );
    let png = encode_with_image(&quadrants(), image::ImageFormat::Png);
    assert_eq!(
        render(
            &png[..png.len() - 40],
            &small_recipe(),
            &Limits::default(),
            None
        )
        .unwrap_err()
        .code(),
        "corrupt-image"
    );
    assert_eq!(
        render(b"", &small_recipe(), &Limits::default(), None)
            .unwrap_err()
            .code(),
        "empty-source"
    );
    assert_eq!(
        render(
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            &small_recipe(),
            &Limits::default(),
            None
        )
        .unwrap_err()
        .code(),
        "unsupported-format"
    );
    // Every prefix of a valid file is either rendered or refused with a code: no panic.
    for len in (0..good.len()).step_by(97) {
        if let Err(e) = render(&good[..len], &small_recipe(), &Limits::default(), None) {
            assert_ne!(e.code(), "internal-error", "prefix {len}: {e}");
        }
    }
}

#[test]
fn a_big_photo_is_decoded_at_a_reduced_scale() {
    // 4096x3072 for a 2048 box: half scale gives exactly 2048x1536.
    let big = Raster::filled(4096, 3072, Layout::Rgb, &[90, 120, 150]);
    let jpeg = encode_with_image(&big, image::ImageFormat::Jpeg);
    let out = render(&jpeg, &Recipe::default(), &Limits::default(), None).unwrap();
    assert_eq!(out.decode_scale, (1, 2));
    let sizes: Vec<_> = out.variants.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(sizes, [(2048, 1536), (1024, 768), (320, 320)]);
    let large = decode(&out.variants[0].bytes);
    assert!(close(mean(&large, 0, 0, 2048, 1536), [90, 120, 150], 3.0));
}

use ec2_service::pipeline::orient::{Orientation, orient};
use ec2_service::pipeline::{Fit, Limits, OutputFormat, Raster, Recipe, Rendered, render};

use crate::support::*;
use crate::{corpus, photo};

fn look(name: &str) -> Rendered {
    let r = recipe(vec![variant("look", 256, Fit::Inside, OutputFormat::Png)]);
    render(&photo(name), &r, &Limits::default(), None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn look_raster(name: &str) -> Raster {
    decode(&look(name).variants[0].bytes)
}

/// Mean absolute difference per channel value, over same-sized rasters.
fn difference(a: &Raster, b: &Raster) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let total: u64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.data.len() as f64
}

#[test]
#[ignore = "corpus tier: scripts/test runs it when ../shared/corpus exists"]
fn all_eight_orientations_match_orientation_one() {
    let reference = look_raster("recurser-Landscape_1.jpg");
    assert_eq!((reference.width, reference.height), (256, 171));
    // The tolerance tells right from wrong: a mirrored reference is far off.
    let mirrored = orient(reference.clone(), Orientation::from_exif(Some(2)));
    assert!(difference(&reference, &mirrored) > 20.0);
    for n in 0..=8 {
        let name = format!("recurser-Landscape_{n}.jpg");
        let out = look(&name);
        let expected = if n == 0 { 1 } else { n };
        assert_eq!(out.metadata.orientation, expected, "{name}");
        let d = difference(&reference, &decode(&out.variants[0].bytes));
        assert!(d < 4.0, "{name}: differs from orientation 1 by {d:.1}");
    }
    // Portraits: upright, and all four agree (5 and 7 mirror, 6 and 8 only rotate).
    let portrait = look_raster("recurser-Portrait_6.jpg");
    assert!(portrait.height > portrait.width);
    for n in [5, 7, 8] {
        let name = format!("recurser-Portrait_{n}.jpg");
        let d = difference(&portrait, &look_raster(&name));
        assert!(d < 4.0, "{name}: differs from Portrait_6 by {d:.1}");
    }
}

#[test]
#[ignore = "corpus tier: scripts/test runs it when ../shared/corpus exists"]
fn every_photo_renders_with_the_standard_recipe() {
    let mut names: Vec<_> = std::fs::read_dir(corpus().join("photos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 50);
    let recipe = Recipe::default();
    for name in names {
        let out = render(&photo(&name), &recipe, &Limits::default(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = (out.metadata.width, out.metadata.height);
        for v in &out.variants {
            let spec = recipe.variants.iter().find(|s| s.name == v.name).unwrap();
            let decoded = image::load_from_memory(&v.bytes)
                .unwrap_or_else(|e| panic!("{name}/{}: {e}", v.name));
            assert_eq!(
                (decoded.width(), decoded.height()),
                (v.width, v.height),
                "{name}/{}",
                v.name
            );
            match spec.fit {
                Fit::Cover => assert_eq!((v.width, v.height), (spec.width, spec.height)),
                Fit::Inside => {
                    assert!(
                        v.width <= spec.width.min(w) && v.height <= spec.height.min(h),
                        "{name}/{}",
                        v.name
                    );
                    let aspect = f64::from(w) / f64::from(h);
                    let got = f64::from(v.width) / f64::from(v.height);
                    let tolerance = 1.0 / f64::from(v.width.min(v.height)) * aspect.max(1.0) + 1e-9;
                    assert!(
                        (aspect - got).abs() / aspect <= tolerance * 1.5,
                        "{name}/{}: aspect {aspect} vs {got}",
                        v.name
                    );
                }
            }
        }
    }
}

#[test]
#[ignore = "corpus tier: scripts/test runs it when ../shared/corpus exists"]
fn cmyk_photo_matches_its_rgb_twin() {
    // The same photo stored as RGB and as CMYK (with orientation 6).
    let rgb = look_raster("thumbor-Giunchedi_Filippo_January_2015_01.jpg");
    let cmyk = look("thumbor-Giunchedi_Filippo_January_2015_01-cmyk-orientation-exif.jpg");
    assert!(cmyk.metadata.converted_to_srgb);
    assert_eq!(cmyk.metadata.orientation, 6);
    let cmyk = decode(&cmyk.variants[0].bytes);
    let rgb_rotated = orient(rgb, Orientation::from_exif(Some(6)));
    let d = difference(&rgb_rotated, &cmyk);
    assert!(d < 6.0, "CMYK differs from its RGB twin by {d:.1}");

    let swop = look("sharp-Channel_digital_image_CMYK_color.jpg");
    assert!(swop.metadata.converted_to_srgb);
    assert_eq!(
        swop.metadata.icc_description.as_deref(),
        Some("U.S. Web Coated (SWOP) v2")
    );
    // Plausible sRGB: neither washed out to white nor crushed, and not one channel only.
    let img = decode(&swop.variants[0].bytes);
    let m = mean(&img, 0, 0, img.width, img.height);
    assert!(m.iter().all(|c| (60.0..200.0).contains(c)), "{m:?}");
}

#[test]
#[ignore = "corpus tier: scripts/test runs it when ../shared/corpus exists"]
fn known_camera_photos_give_the_right_metadata() {
    let canon = look("ianare-Canon_40D.jpg").metadata;
    assert_eq!(canon.camera.make.as_deref(), Some("Canon"));
    assert_eq!(canon.camera.model.as_deref(), Some("Canon EOS 40D"));
    assert_eq!(
        canon.camera.date_taken.as_deref(),
        Some("2008-05-30T15:56:01")
    );
    assert_eq!(canon.camera.exposure_time.as_deref(), Some("1/160"));
    assert_eq!(canon.camera.f_number, Some(7.1));
    assert_eq!(canon.camera.iso, Some(100));
    assert_eq!(canon.camera.focal_length_mm, Some(135.0));
    assert_eq!((canon.width, canon.height), (100, 68));
    assert_eq!(canon.icc_description.as_deref(), Some("sRGB IEC61966-2.1"));
    assert!(!canon.converted_to_srgb, "sRGB sources are left alone");
    assert_eq!(canon.gps, None);

    let nikon = look("ianare-DSCN0010.jpg").metadata;
    assert_eq!(nikon.camera.model.as_deref(), Some("COOLPIX P6000"));
    let gps = nikon.gps.expect("DSCN0010 has GPS");
    assert!((gps.latitude - 43.467_448).abs() < 1e-5, "{gps:?}");
    assert!((gps.longitude - 11.885_127).abs() < 1e-5, "{gps:?}");

    let leica = look("mei-Leica_T_Typ_701_.jpg").metadata;
    assert_eq!(leica.orientation, 8);
    assert_eq!((leica.width, leica.height), (3264, 4928));
    assert_eq!(
        leica.gps, None,
        "its GPS block holds no fix (0/0 rationals)"
    );

    assert_eq!(
        look("thumbor-Rotating_earth_large_.gif").metadata.frames,
        44
    );
    assert_eq!(look("imagers-ball.png").metadata.frames, 20);
    assert_eq!(look("sharp-animated-loop-3.webp").metadata.frames, 10);
    assert_eq!(look("mei-multipage.tif").metadata.frames, 5);
    assert!(look("thumbor-paletted-transparent.png").metadata.has_alpha);
    assert!(
        !look("sharp-Flag_of_the_Netherlands-16bit.png")
            .metadata
            .has_alpha
    );
}

#[test]
#[ignore = "corpus tier: scripts/test runs it when ../shared/corpus exists"]
fn gps_never_reaches_a_variant() {
    let r = recipe(vec![
        variant("j", 512, Fit::Inside, OutputFormat::Jpeg),
        variant("w", 512, Fit::Inside, OutputFormat::Webp),
        variant("p", 128, Fit::Cover, OutputFormat::Png),
    ]);
    for name in [
        "ianare-DSCN0010.jpg",
        "mei-Samsung_SM-G935L_Galaxy_S7_Edge_.jpg",
        "mei-Oppo_R7_Plus.jpg",
    ] {
        let out = render(&photo(name), &r, &Limits::default(), None).unwrap();
        assert!(out.metadata.gps.is_some(), "{name} has GPS in its record");
        for v in &out.variants {
            assert!(
                !v.bytes.windows(4).any(|w| w == b"Exif" || w == b"eXIf"),
                "{name}/{}",
                v.name
            );
        }
    }
}

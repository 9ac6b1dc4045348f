//! Test images made on the fly: no fixture files in the repository.
#![allow(dead_code)]

use ec2_service::pipeline::encode::encode;
use ec2_service::pipeline::{Fit, Layout, OutputFormat, Raster, Recipe, VariantSpec};

/// 120x80, four quadrants: red, green / blue, white. Any rotation or mirror moves
/// the colors to other corners.
pub fn quadrants() -> Raster {
    quadrants_of(120, 80)
}

/// [`quadrants`] at `width`x`height`.
pub fn quadrants_of(width: u32, height: u32) -> Raster {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend(match (x < width / 2, y < height / 2) {
                (true, true) => [230, 20, 20],
                (false, true) => [20, 200, 20],
                (true, false) => [20, 20, 230],
                (false, false) => [250, 250, 250],
            });
        }
    }
    Raster::new(width, height, Layout::Rgb, data)
}

/// Mean color of a rectangle.
pub fn mean(r: &Raster, x0: u32, y0: u32, x1: u32, y1: u32) -> [f64; 3] {
    let mut sum = [0f64; 3];
    let mut n = 0f64;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = r.pixel(x, y);
            for c in 0..3 {
                sum[c] += f64::from(p[c]);
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

pub fn close(a: [f64; 3], b: [u8; 3], tolerance: f64) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - f64::from(y)).abs() <= tolerance)
}

/// Decodes an encoded variant back to RGB(A) pixels.
pub fn decode(bytes: &[u8]) -> Raster {
    let img = image::load_from_memory(bytes).expect("variant decodes");
    if img.color().has_alpha() {
        let rgba = img.into_rgba8();
        let (w, h) = rgba.dimensions();
        Raster::new(w, h, Layout::Rgba, rgba.into_raw())
    } else {
        let rgb = img.into_rgb8();
        let (w, h) = rgb.dimensions();
        Raster::new(w, h, Layout::Rgb, rgb.into_raw())
    }
}

pub fn variant(name: &str, side: u32, fit: Fit, format: OutputFormat) -> VariantSpec {
    VariantSpec {
        name: name.to_owned(),
        width: side,
        height: side,
        fit,
        format,
        quality: 90,
        watermark: false,
    }
}

pub fn recipe(variants: Vec<VariantSpec>) -> Recipe {
    Recipe {
        version: "test-1".to_owned(),
        background: "#ffffff".to_owned(),
        variants,
    }
}

/// A minimal little-endian EXIF (TIFF) block.
#[derive(Default)]
pub struct ExifBuilder {
    pub orientation: Option<u16>,
    pub make: Option<String>,
    pub model: Option<String>,
    /// (latitude, longitude) in degrees; negative is south / west.
    pub gps: Option<(f64, f64)>,
}

impl ExifBuilder {
    /// The APP1 payload: `Exif\0\0` and a TIFF structure.
    pub fn build(&self) -> Vec<u8> {
        // Entries: (tag, type, count, value bytes). Values over 4 bytes go to a data area.
        let mut ifd0: Vec<(u16, u16, u32, Vec<u8>)> = Vec::new();
        if let Some(make) = &self.make {
            ifd0.push((
                0x010F,
                2,
                make.len() as u32 + 1,
                [make.as_bytes(), b"\0"].concat(),
            ));
        }
        if let Some(model) = &self.model {
            ifd0.push((
                0x0110,
                2,
                model.len() as u32 + 1,
                [model.as_bytes(), b"\0"].concat(),
            ));
        }
        if let Some(o) = self.orientation {
            ifd0.push((0x0112, 3, 1, o.to_le_bytes().to_vec()));
        }
        let mut gps_ifd: Vec<(u16, u16, u32, Vec<u8>)> = Vec::new();
        if let Some((lat, lon)) = self.gps {
            let dms = |v: f64| {
                let v = v.abs();
                let d = v.floor();
                let m = ((v - d) * 60.0).floor();
                let s = ((v - d) * 60.0 - m) * 60.0;
                let mut out = Vec::new();
                for (num, den) in [
                    (d as u32, 1u32),
                    (m as u32, 1),
                    ((s * 10000.0).round() as u32, 10000),
                ] {
                    out.extend(num.to_le_bytes());
                    out.extend(den.to_le_bytes());
                }
                out
            };
            gps_ifd.push((1, 2, 2, vec![if lat < 0.0 { b'S' } else { b'N' }, 0]));
            gps_ifd.push((2, 5, 3, dms(lat)));
            gps_ifd.push((3, 2, 2, vec![if lon < 0.0 { b'W' } else { b'E' }, 0]));
            gps_ifd.push((4, 5, 3, dms(lon)));
            ifd0.push((0x8825, 4, 1, vec![0; 4])); // patched below
        }
        ifd0.sort_by_key(|e| e.0);
        let ifd_len = |n: usize| 2 + n * 12 + 4;
        let ifd0_at = 8usize;
        let mut data_at = ifd0_at + ifd_len(ifd0.len());
        let gps_at = data_at
            + ifd0
                .iter()
                .map(|e| if e.3.len() > 4 { e.3.len() } else { 0 })
                .sum::<usize>();
        let mut tiff = b"II*\0".to_vec();
        tiff.extend((ifd0_at as u32).to_le_bytes());
        let write_ifd =
            |tiff: &mut Vec<u8>, entries: &[(u16, u16, u32, Vec<u8>)], data_at: &mut usize| {
                let mut data = Vec::new();
                tiff.extend((entries.len() as u16).to_le_bytes());
                for (tag, kind, count, value) in entries {
                    tiff.extend(tag.to_le_bytes());
                    tiff.extend(kind.to_le_bytes());
                    tiff.extend(count.to_le_bytes());
                    let value = if *tag == 0x8825 {
                        (gps_at as u32).to_le_bytes().to_vec()
                    } else {
                        value.clone()
                    };
                    if value.len() > 4 {
                        tiff.extend((*data_at as u32).to_le_bytes());
                        *data_at += value.len();
                        data.extend(value);
                    } else {
                        let mut v = value.clone();
                        v.resize(4, 0);
                        tiff.extend(v);
                    }
                }
                tiff.extend(0u32.to_le_bytes());
                tiff.extend(data);
            };
        write_ifd(&mut tiff, &ifd0, &mut data_at);
        if !gps_ifd.is_empty() {
            assert_eq!(tiff.len(), gps_at);
            let mut gps_data_at = gps_at + ifd_len(gps_ifd.len());
            write_ifd(&mut tiff, &gps_ifd, &mut gps_data_at);
        }
        [b"Exif\0\0".as_slice(), &tiff].concat()
    }
}

/// Encodes `raster` as a JPEG and inserts `exif` as an APP1 segment after SOI.
pub fn jpeg_with_exif(raster: &Raster, exif: &ExifBuilder) -> Vec<u8> {
    let jpeg = encode(raster, OutputFormat::Jpeg, 95, [255, 255, 255]).expect("encode");
    let payload = exif.build();
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend(&jpeg[2..]);
    out
}

/// Encodes with the `image` crate (PNG, GIF, TIFF, BMP, lossless WebP).
pub fn encode_with_image(raster: &Raster, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let img: image::DynamicImage = match raster.layout {
        Layout::Rgb => image::RgbImage::from_raw(raster.width, raster.height, raster.data.clone())
            .unwrap()
            .into(),
        Layout::Rgba => {
            image::RgbaImage::from_raw(raster.width, raster.height, raster.data.clone())
                .unwrap()
                .into()
        }
    };
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

/// Whether a command is on the PATH.
pub fn have_command(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Says plainly, on the terminal (past the test harness's capture), that a test did not
/// run and why.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A fresh scratch directory for one test.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pipeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Mean absolute difference per channel value of two same-sized RGB rasters.
pub fn mean_difference(a: &Raster, b: &Raster) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    let (a, b) = (a.flatten([255, 255, 255]), b.flatten([255, 255, 255]));
    let total: u64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.data.len() as f64
}

/// A smooth, asymmetric photo-like picture (waves over ramps): resizing and codecs
/// change it little, a turn or a mirror changes it a lot.
pub fn scene(width: u32, height: u32) -> Raster {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (
                f64::from(x) / f64::from(width),
                f64::from(y) / f64::from(height),
            );
            let l = 0.5 + 0.3 * (u * 7.0 + 1.0).sin() * (v * 5.0).cos() + 0.2 * u * u - 0.15 * v;
            let l = (l.clamp(0.0, 1.0) * 255.0) as u8;
            data.extend([l, (u * 255.0) as u8, ((1.0 - v) * 200.0) as u8]);
        }
    }
    Raster::new(width, height, Layout::Rgb, data)
}

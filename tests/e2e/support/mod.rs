//! The harness: a shared moto server, a fresh world per test, the daemon as a process, a
//! proxy to take the server away, and test images made on the fly.
#![allow(dead_code)]

pub mod daemon;
pub mod edge;
pub mod fixture;
pub mod fleet;
pub mod moto;
pub mod pipeline;
pub mod proxy;

/// The pipeline tests' image helpers (rasters, EXIF), shared rather than copied.
#[path = "../../../ec2-service/tests/support/mod.rs"]
pub mod images;

use ec2_service::pipeline::{Layout, Raster};

/// A `width`x`height` JPEG photo: a colour gradient, EXIF camera fields and a GPS
/// position.
pub fn photo(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend([
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
    }
    let raster = Raster::new(width, height, Layout::Rgb, data);
    images::jpeg_with_exif(
        &raster,
        &images::ExifBuilder {
            orientation: Some(1),
            make: Some("TestCam".to_owned()),
            model: Some("E2E-1".to_owned()),
            gps: Some((48.8584, 2.2945)),
        },
    )
}

/// A photo that is noisy, so that it compresses badly and takes a while to render.
pub fn heavy_photo(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for _ in 0..width * height * 3 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.push(state as u8);
    }
    let raster = Raster::new(width, height, Layout::Rgb, data);
    ec2_service::pipeline::encode::encode(
        &raster,
        ec2_service::pipeline::OutputFormat::Jpeg,
        95,
        [255, 255, 255],
    )
    .unwrap()
}

/// A decompression bomb: a small JPEG whose header claims 60000x60000 pixels.
pub fn bomb() -> Vec<u8> {
    let mut jpeg = photo(32, 32);
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    jpeg
}

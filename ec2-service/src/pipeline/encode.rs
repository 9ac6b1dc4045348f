//! Stage 7: encode a variant. Nothing but pixels goes out: no EXIF, no GPS, no ICC
//! profile (the pixels are sRGB, which untagged web images are taken to be).

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use ravif::Img;
use rgb::FromSlice;
use turbojpeg::{Compressor, Image as TjImage, PixelFormat, Subsamp};

use super::raster::{Layout, Raster};
use super::recipe::OutputFormat;

/// AVIF encoder speed (1 slowest .. 10 fastest): 8 keeps a 2048-pixel variant to
/// about a second of one core.
const AVIF_SPEED: u8 = 8;

/// Encodes `raster` as `format`. Alpha is kept where the format has it and the
/// image uses it; otherwise the image is flattened onto `background`.
pub fn encode(
    raster: &Raster,
    format: OutputFormat,
    quality: u8,
    background: [u8; 3],
) -> Result<Vec<u8>, String> {
    let flattened;
    let raster =
        if raster.layout == Layout::Rgba && !(format.keeps_alpha() && raster.has_transparency()) {
            flattened = raster.flatten(background);
            &flattened
        } else {
            raster
        };
    match format {
        OutputFormat::Jpeg => jpeg(raster, quality),
        OutputFormat::Webp => webp(raster, quality),
        OutputFormat::Png => png(raster),
        OutputFormat::Avif => avif(raster, quality),
    }
}

fn jpeg(raster: &Raster, quality: u8) -> Result<Vec<u8>, String> {
    let mut c = Compressor::new().map_err(|e| e.to_string())?;
    c.set_quality(i32::from(quality))
        .map_err(|e| e.to_string())?;
    c.set_subsamp(Subsamp::Sub2x2).map_err(|e| e.to_string())?;
    c.set_optimize(true).map_err(|e| e.to_string())?;
    let image = TjImage {
        pixels: raster.data.as_slice(),
        width: raster.width as usize,
        pitch: raster.row_bytes(),
        height: raster.height as usize,
        format: PixelFormat::RGB,
    };
    c.compress_to_vec(image).map_err(|e| e.to_string())
}

fn webp(raster: &Raster, quality: u8) -> Result<Vec<u8>, String> {
    let encoder = match raster.layout {
        Layout::Rgb => webp::Encoder::from_rgb(&raster.data, raster.width, raster.height),
        Layout::Rgba => webp::Encoder::from_rgba(&raster.data, raster.width, raster.height),
    };
    encoder
        .encode_simple(false, f32::from(quality))
        .map(|m| m.to_vec())
        .map_err(|e| format!("{e:?}"))
}

fn png(raster: &Raster) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let color = match raster.layout {
        Layout::Rgb => image::ExtendedColorType::Rgb8,
        Layout::Rgba => image::ExtendedColorType::Rgba8,
    };
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(&raster.data, raster.width, raster.height, color)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn avif(raster: &Raster, quality: u8) -> Result<Vec<u8>, String> {
    let encoder = ravif::Encoder::new()
        .with_quality(f32::from(quality))
        .with_alpha_quality(f32::from(quality))
        .with_speed(AVIF_SPEED);
    let (w, h) = (raster.width as usize, raster.height as usize);
    let encoded = match raster.layout {
        Layout::Rgb => encoder.encode_rgb(Img::new(raster.data.as_rgb(), w, h)),
        Layout::Rgba => encoder.encode_rgba(Img::new(raster.data.as_rgba(), w, h)),
    };
    encoded.map(|e| e.avif_file).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(layout: Layout) -> Raster {
        let (w, h) = (64u32, 48u32);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend([(x * 4) as u8, (y * 5) as u8, 128]);
                if layout == Layout::Rgba {
                    data.push(if x < 32 { 255 } else { 0 });
                }
            }
        }
        Raster::new(w, h, layout, data)
    }

    #[test]
    fn every_format_round_trips_dimensions_and_alpha() {
        for format in [
            OutputFormat::Jpeg,
            OutputFormat::Webp,
            OutputFormat::Png,
            OutputFormat::Avif,
        ] {
            let bytes = encode(&gradient(Layout::Rgba), format, 80, [255, 255, 255]).unwrap();
            let decoded = image::load_from_memory(&bytes);
            if format == OutputFormat::Avif {
                // The image crate here decodes no AVIF; check the container instead.
                assert_eq!(&bytes[4..12], b"ftypavif");
                continue;
            }
            let decoded = decoded.unwrap();
            assert_eq!((decoded.width(), decoded.height()), (64, 48), "{format:?}");
            assert_eq!(
                decoded.color().has_alpha(),
                format.keeps_alpha(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn jpeg_flattens_transparency_onto_the_background() {
        let bytes = encode(
            &gradient(Layout::Rgba),
            OutputFormat::Jpeg,
            90,
            [255, 0, 255],
        )
        .unwrap();
        let img = image::load_from_memory(&bytes).unwrap().into_rgb8();
        let p = img.get_pixel(60, 20);
        assert!(p[0] > 240 && p[1] < 20 && p[2] > 240, "{p:?}");
    }

    #[test]
    fn outputs_carry_no_exif() {
        let bytes = encode(&gradient(Layout::Rgb), OutputFormat::Jpeg, 90, [0; 3]).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
    }
}

//! Stage 7: encode a variant. Nothing but pixels goes out: no EXIF, no GPS, no ICC
//! profile (the pixels are sRGB, which untagged web images are taken to be).

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use ravif::Img;
use rgb::FromSlice;
use turbojpeg::{Compressor, Image as TjImage, PixelFormat, Subsamp, YuvPlanesImage};

use super::huffman;
use super::planes::{Pixels, Planes};
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

/// Encodes rasters as [`encode`] does, and planes (always JPEG: the render only
/// takes the plane path when every variant is a JPEG) as [`jpeg_from_planes`].
pub fn encode_pixels(
    pixels: &Pixels,
    format: OutputFormat,
    quality: u8,
    background: [u8; 3],
) -> Result<Vec<u8>, String> {
    match (pixels, format) {
        (Pixels::Rgb(r), _) => encode(r, format, quality, background),
        (Pixels::Planes(p), OutputFormat::Jpeg) => jpeg_from_planes(p, quality),
        (Pixels::Planes(_), other) => {
            Err(format!("{} is not encoded from YCbCr planes", other.name()))
        }
    }
}

/// The JPEG settings of every variant: 4:2:0, optimised Huffman tables. libjpeg-turbo
/// writes the standard tables and [`huffman::optimize`] makes them optimal (the same
/// sizes as libjpeg-turbo's own optimisation, in a fraction of its time); should that
/// not take the stream, libjpeg-turbo encodes again with its own optimisation.
fn jpeg_with_optimal_tables(
    quality: u8,
    compress: impl Fn(&mut Compressor) -> turbojpeg::Result<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let mut c = Compressor::new().map_err(|e| e.to_string())?;
    c.set_quality(i32::from(quality))
        .map_err(|e| e.to_string())?;
    c.set_subsamp(Subsamp::Sub2x2).map_err(|e| e.to_string())?;
    c.set_optimize(false).map_err(|e| e.to_string())?;
    let standard = compress(&mut c).map_err(|e| e.to_string())?;
    if let Some(optimal) = huffman::optimize(&standard) {
        return Ok(optimal);
    }
    c.set_optimize(true).map_err(|e| e.to_string())?;
    compress(&mut c).map_err(|e| e.to_string())
}

/// A JPEG straight from 4:2:0 planes: no color conversion, no chroma downsampling.
pub fn jpeg_from_planes(planes: &Planes, quality: u8) -> Result<Vec<u8>, String> {
    if planes.chroma_step != (2, 2) {
        return Err(format!(
            "planes with chroma 1/{:?} are not 4:2:0",
            planes.chroma_step
        ));
    }
    // The encoder reads whole chroma samples: luma padded to even sizes.
    let (w, h) = (planes.width, planes.height);
    let y = planes
        .y
        .padded(w.next_multiple_of(2), h.next_multiple_of(2));
    let image = YuvPlanesImage {
        y_plane: y.data.as_slice(),
        u_plane: planes.cb.data.as_slice(),
        v_plane: planes.cr.data.as_slice(),
        width: w as usize,
        height: h as usize,
        y_stride: y.width as usize,
        u_stride: planes.cb.width as usize,
        v_stride: planes.cr.width as usize,
        subsamp: Subsamp::Sub2x2,
    };
    jpeg_with_optimal_tables(quality, |c| c.compress_yuv_planes_to_vec(&image))
}

fn jpeg(raster: &Raster, quality: u8) -> Result<Vec<u8>, String> {
    let image = TjImage {
        pixels: raster.data.as_slice(),
        width: raster.width as usize,
        pitch: raster.row_bytes(),
        height: raster.height as usize,
        format: PixelFormat::RGB,
    };
    jpeg_with_optimal_tables(quality, |c| c.compress_to_vec(image))
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
    fn planes_encode_to_the_same_picture_as_pixels() {
        use super::super::planes::Plane;
        // An odd-sized 4:2:0 picture: left half red, right half blue (JPEG YCbCr).
        let (w, h) = (33u32, 17u32);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let half = |left: u8, right: u8, pw: u32, ph: u32, split: u32| {
            let data = (0..ph)
                .flat_map(|_| (0..pw).map(move |x| if x < split { left } else { right }))
                .collect();
            Plane::new(pw, ph, data)
        };
        let planes = Planes {
            width: w,
            height: h,
            y: half(76, 29, w, h, 16),
            cb: half(85, 255, cw, ch, 8),
            cr: half(255, 107, cw, ch, 8),
            chroma_step: (2, 2),
        };
        let bytes = jpeg_from_planes(&planes, 95).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (w, h));
        let (l, r) = (img.get_pixel(3, 8), img.get_pixel(30, 8));
        assert!(l[0] > 230 && l[2] < 30, "left is red: {l:?}");
        assert!(r[2] > 230 && r[0] < 30, "right is blue: {r:?}");
    }

    #[test]
    fn outputs_carry_no_exif() {
        let bytes = encode(&gradient(Layout::Rgb), OutputFormat::Jpeg, 90, [0; 3]).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
    }
}

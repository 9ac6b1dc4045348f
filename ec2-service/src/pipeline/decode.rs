//! Stage 2: decode the source once, at the smallest size the recipe allows.
//!
//! JPEG goes through libjpeg-turbo with DCT scaling (shrink-on-load): a 22 MP photo whose
//! largest variant is 2048 pixels wide is decoded at 1/2 scale, a quarter of the work.
//! Other formats go through the `image` crate under allocation limits derived from the
//! already-checked header. CMYK JPEGs are converted to RGB here, since only this stage
//! sees the ink values. When the render allows it, a YCbCr JPEG that needs no color
//! conversion is decoded to its planes instead of RGB (see [`super::planes`]).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError};
use turbojpeg::{
    Colorspace, Decompressor, Image as TjImage, PixelFormat, ScalingFactor, Subsamp, YuvImage,
};

use super::av1;
use super::color;
use super::error::PipelineError;
use super::heif;
use super::planes::{Pixels, Plane, Planes};
use super::probe::{Probe, SourceFormat};
use super::raster::{Layout, Raster};

/// A decoded source: pixels in the stored orientation, and what color conversion still
/// needs.
#[derive(Debug)]
pub struct Decoded {
    pub pixels: Pixels,
    /// The embedded ICC profile, if any (already applied when `color_applied`).
    pub icc: Option<Vec<u8>>,
    /// The ICC profile was already applied (CMYK sources).
    pub color_applied: bool,
    /// DCT scale the JPEG was decoded at, as (numerator, denominator); (1, 1) otherwise.
    pub scale: (u32, u32),
}

/// Decodes `bytes`, whose header `probe` has already passed the limits. `min_size` is
/// the smallest (width, height), in stored orientation, that still serves every variant:
/// a JPEG may be decoded down to it, never below. With `planes_ok`, a JPEG that needs
/// no color conversion comes out as YCbCr planes.
pub fn decode(
    bytes: &[u8],
    probe: &Probe,
    min_size: (u32, u32),
    planes_ok: bool,
) -> Result<Decoded, PipelineError> {
    match probe.format {
        SourceFormat::Jpeg => decode_jpeg(bytes, min_size, planes_ok),
        SourceFormat::Heic => decode_heic(bytes, probe),
        SourceFormat::Avif => av1::decode_avif(bytes, probe),
        _ => decode_with_image(bytes, probe),
    }
}

/// HEIC through `heifer`: upright (the container's transforms applied) and in sRGB.
fn decode_heic(bytes: &[u8], probe: &Probe) -> Result<Decoded, PipelineError> {
    // Room for grid tiles beyond the declared output; the declared size passed the
    // limits already.
    let declared = u64::from(probe.width) * u64::from(probe.height);
    let heif = heif::decode_heic(bytes, declared.saturating_mul(2).saturating_add(1 << 24))?;
    Ok(Decoded {
        pixels: Pixels::Rgb(heif.raster),
        icc: heif.icc,
        color_applied: heif.converted,
        scale: (1, 1),
    })
}

/// Luma pixels per chroma sample of the subsamplings the plane path takes.
fn chroma_step(subsamp: Subsamp) -> Option<(u32, u32)> {
    match subsamp {
        Subsamp::None => Some((1, 1)),
        Subsamp::Sub2x1 => Some((2, 1)),
        Subsamp::Sub2x2 => Some((2, 2)),
        Subsamp::Sub1x2 => Some((1, 2)),
        Subsamp::Sub4x1 => Some((4, 1)),
        _ => None,
    }
}

/// The smallest n/8 scale (n = 1..8) whose output still covers `min_size`.
pub fn jpeg_scale(width: u32, height: u32, min_size: (u32, u32)) -> ScalingFactor {
    for n in 1..=8 {
        let f = ScalingFactor::new(n, 8);
        if f.scale(width as usize) >= min_size.0 as usize
            && f.scale(height as usize) >= min_size.1 as usize
        {
            return f;
        }
    }
    ScalingFactor::ONE
}

fn decode_jpeg(
    bytes: &[u8],
    min_size: (u32, u32),
    planes_ok: bool,
) -> Result<Decoded, PipelineError> {
    let fail = |e: turbojpeg::Error| PipelineError::corrupt(SourceFormat::Jpeg, e.to_string());
    let mut tj = Decompressor::new().map_err(|e| PipelineError::Internal(e.to_string()))?;
    // Progressive JPEGs with absurd scan counts are a known CPU bomb.
    tj.set_scan_limit(500).map_err(fail)?;
    let header = tj.read_header(bytes).map_err(fail)?;
    let scale = if header.is_lossless {
        ScalingFactor::ONE
    } else {
        jpeg_scale(header.width as u32, header.height as u32, min_size)
    };
    tj.set_scaling_factor(scale).map_err(fail)?;
    let scaled = header.scaled(scale);
    let (width, height) = (scaled.width, scaled.height);
    let markers = JpegMarkers::read(bytes);
    let scale_pair = (scale.num() as u32, scale.denom() as u32);
    if let Some(step) = chroma_step(header.subsamp).filter(|_| {
        planes_ok
            && !header.is_lossless
            && header.colorspace == Colorspace::YCbCr
            && color::is_srgb_or_untagged(markers.icc.as_deref())
    }) {
        let planes = decode_jpeg_planes(&mut tj, bytes, (width, height), header.subsamp, step)?;
        return Ok(Decoded {
            pixels: Pixels::Planes(planes),
            icc: markers.icc,
            color_applied: false,
            scale: scale_pair,
        });
    }
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk {
        PixelFormat::CMYK
    } else {
        PixelFormat::RGB
    };
    let mut pixels = vec![0u8; width * height * format.size()];
    let out = TjImage {
        pixels: pixels.as_mut_slice(),
        width,
        pitch: width * format.size(),
        height,
        format,
    };
    if let Err(e) = tj.decompress(bytes, out) {
        let message = e.to_string();
        if !is_benign_jpeg_warning(&message) {
            return Err(PipelineError::corrupt(SourceFormat::Jpeg, message));
        }
    }
    let (w, h) = (width as u32, height as u32);
    let scale = scale_pair;
    if cmyk {
        let rgb = color::cmyk_to_rgb(&pixels, markers.icc.as_deref(), markers.adobe_inverted());
        return Ok(Decoded {
            pixels: Pixels::Rgb(Raster::new(w, h, Layout::Rgb, rgb)),
            icc: markers.icc,
            color_applied: true,
            scale,
        });
    }
    Ok(Decoded {
        pixels: Pixels::Rgb(Raster::new(w, h, Layout::Rgb, pixels)),
        icc: markers.icc,
        color_applied: false,
        scale,
    })
}

/// Decodes (at the scale already set on `tj`) to Y, Cb and Cr planes. libjpeg-turbo
/// pads the luma plane to whole chroma samples; the picture keeps its own size.
fn decode_jpeg_planes(
    tj: &mut Decompressor,
    bytes: &[u8],
    (width, height): (usize, usize),
    subsamp: Subsamp,
    (sx, sy): (u32, u32),
) -> Result<Planes, PipelineError> {
    let internal = |what: &str| PipelineError::Internal(format!("YCbCr decode: {what}"));
    let yw = width.next_multiple_of(sx as usize);
    let yh = height.next_multiple_of(sy as usize);
    let (cw, ch) = (yw / sx as usize, yh / sy as usize);
    let len = turbojpeg::yuv_pixels_len(width, 1, height, subsamp)
        .map_err(|e| internal(&e.to_string()))?;
    if len != yw * yh + 2 * cw * ch {
        return Err(internal("unexpected plane layout"));
    }
    let mut pixels = vec![0u8; len];
    let out = YuvImage {
        pixels: pixels.as_mut_slice(),
        width,
        align: 1,
        height,
        subsamp,
    };
    if let Err(e) = tj.decompress_to_yuv(bytes, out) {
        let message = e.to_string();
        if !is_benign_jpeg_warning(&message) {
            return Err(PipelineError::corrupt(SourceFormat::Jpeg, message));
        }
    }
    let cr = pixels.split_off(yw * yh + cw * ch);
    let cb = pixels.split_off(yw * yh);
    let (cw, ch, yw, yh) = (cw as u32, ch as u32, yw as u32, yh as u32);
    Ok(Planes {
        width: width as u32,
        height: height as u32,
        y: Plane::new(yw, yh, pixels),
        cb: Plane::new(cw, ch, cb),
        cr: Plane::new(cw, ch, cr),
        chroma_step: (sx, sy),
    })
}

/// libjpeg reports recoverable problems as warnings and still fills the image. Some are
/// harmless and common in camera files (stray bytes between markers); the ones that
/// mean missing or garbled pixel data fail the source rather than publish a grey smear.
fn is_benign_jpeg_warning(message: &str) -> bool {
    const BENIGN: [&str; 5] = [
        "extraneous bytes before marker",
        "Warning: unknown JFIF revision",
        "Warning: thumbnail image size does not match",
        "Invalid SOS parameters for sequential JPEG",
        "Inconsistent progression sequence",
    ];
    BENIGN.iter().any(|b| message.contains(b))
}

/// The APP markers of a JPEG that decoding needs: the ICC profile (possibly split over
/// several APP2 segments) and Adobe's APP14 (CMYK stored inverted).
#[derive(Debug, Default)]
pub struct JpegMarkers {
    pub icc: Option<Vec<u8>>,
    pub adobe: bool,
}

impl JpegMarkers {
    pub fn read(bytes: &[u8]) -> JpegMarkers {
        let mut chunks: Vec<(u8, &[u8])> = Vec::new();
        let mut adobe = false;
        let mut at = 2usize;
        while at + 4 <= bytes.len() && bytes[at] == 0xFF {
            let marker = bytes[at + 1];
            if marker == 0xFF {
                at += 1;
                continue;
            }
            if marker == 0xDA || marker == 0xD9 {
                break;
            }
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            let Some(body) = bytes.get(at + 4..at + 2 + len) else {
                break;
            };
            if len < 2 {
                break;
            }
            match marker {
                0xE2 if body.starts_with(b"ICC_PROFILE\0") && body.len() > 14 => {
                    chunks.push((body[12], &body[14..]));
                }
                0xEE if body.starts_with(b"Adobe") => adobe = true,
                _ => {}
            }
            at += 2 + len;
        }
        chunks.sort_by_key(|(seq, _)| *seq);
        let icc = (!chunks.is_empty())
            .then(|| chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect());
        JpegMarkers { icc, adobe }
    }

    /// Photoshop (and so nearly every CMYK JPEG) stores CMYK inverted and says so with an
    /// Adobe APP14 marker.
    fn adobe_inverted(&self) -> bool {
        self.adobe
    }
}

fn decode_with_image(bytes: &[u8], probe: &Probe) -> Result<Decoded, PipelineError> {
    let format = match probe.format {
        SourceFormat::Png => image::ImageFormat::Png,
        SourceFormat::Gif => image::ImageFormat::Gif,
        SourceFormat::Webp => image::ImageFormat::WebP,
        SourceFormat::Tiff => image::ImageFormat::Tiff,
        SourceFormat::Bmp => image::ImageFormat::Bmp,
        SourceFormat::Jpeg => image::ImageFormat::Jpeg,
        SourceFormat::Heic | SourceFormat::Avif => {
            return Err(PipelineError::Internal(format!(
                "{} is not decoded by the image crate",
                probe.format
            )));
        }
    };
    let map = |e: ImageError| map_image_error(probe.format, e);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(probe.width);
    limits.max_image_height = Some(probe.height);
    // Room for the widest decoder output (RGBA, 16 bits a channel) plus working buffers;
    // the header dimensions were already checked against the configured limits.
    let pixels = u64::from(probe.width) * u64::from(probe.height);
    limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(map)?;
    let icc = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| !p.is_empty());
    let image = DynamicImage::from_decoder(decoder).map_err(map)?;
    let raster = if image.color().has_alpha() {
        let rgba = image.into_rgba8();
        let (w, h) = rgba.dimensions();
        Raster::new(w, h, Layout::Rgba, rgba.into_raw())
    } else {
        let rgb = image.into_rgb8();
        let (w, h) = rgb.dimensions();
        Raster::new(w, h, Layout::Rgb, rgb.into_raw())
    };
    Ok(Decoded {
        pixels: Pixels::Rgb(raster),
        icc,
        color_applied: false,
        scale: (1, 1),
    })
}

fn map_image_error(format: SourceFormat, e: ImageError) -> PipelineError {
    match e {
        ImageError::Limits(l) => PipelineError::MemoryLimit(l.to_string()),
        ImageError::Unsupported(u) => PipelineError::UnsupportedFormat(format!("{format}: {u}")),
        other => PipelineError::corrupt(format, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_scale_never_goes_below_what_the_variants_need() {
        // 5760x3840 for a 2048 box: 3/8 gives 2160 wide, 2/8 would give 1440.
        let f = jpeg_scale(5760, 3840, (2048, 1366));
        assert_eq!((f.num(), f.denom()), (3, 8));
        assert!(f.scale(5760) >= 2048 && f.scale(3840) >= 1366);
        // 4032x3024 for 2048: 1/2 is 2016, too small, so 5/8 (2520).
        let f = jpeg_scale(4032, 3024, (2048, 1536));
        assert_eq!((f.num(), f.denom()), (5, 8));
        // Smaller than the box: decoded at full size.
        let f = jpeg_scale(800, 600, (800, 600));
        assert_eq!((f.num(), f.denom()), (1, 1));
        // Only a thumbnail needed: 1/8.
        let f = jpeg_scale(4000, 3000, (427, 320));
        assert_eq!((f.num(), f.denom()), (1, 8));
    }

    #[test]
    fn benign_jpeg_warnings_are_told_apart_from_truncation() {
        assert!(is_benign_jpeg_warning(
            "TurboJPEG error: Corrupt JPEG data: 2 extraneous bytes before marker 0xd9"
        ));
        assert!(!is_benign_jpeg_warning(
            "TurboJPEG error: Premature end of JPEG file"
        ));
        assert!(!is_benign_jpeg_warning(
            "TurboJPEG error: Corrupt JPEG data: bad Huffman code"
        ));
    }
}

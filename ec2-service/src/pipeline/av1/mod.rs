//! AVIF sources. The container is read by [`super::heif`] (size, grid, crop, rotation,
//! mirror and colors, checked against the limits before anything is decoded); each AV1
//! stream's sequence header is read here so that no frame can be larger than its
//! container says; then libavif, with dav1d, decodes the pixels (grids and alpha
//! assembled, 8 to 12 bits brought to 8-bit RGB by the stream's matrix). Both are C
//! libraries that the `libavif` crate builds from source and links statically: the
//! daemon stays one self-contained binary for Amazon Linux 2023, which has neither.
//! libavif leaves the container's crop and transforms to its caller: they are applied
//! here, and declared colors are brought to sRGB.

mod sequence;

use heifer::heifer_isobmff::HeifFile;

use super::color;
use super::decode::Decoded;
use super::error::PipelineError;
use super::heif::{self, Crop, HeifColor};
use super::orient::{Orientation, orient};
use super::planes::Pixels;
use super::probe::{Probe, SourceFormat};
use super::raster::{Layout, Raster};

/// A frame may be up to this many times the pixels its container declares (the bit
/// widths of a sequence header round its sizes up to powers of two), and never needs
/// to be refused below this many pixels.
const FRAME_SLACK: u64 = 4;
const FRAME_FLOOR: u64 = 1 << 24;

pub fn decode_avif(bytes: &[u8], probe: &Probe) -> Result<Decoded, PipelineError> {
    let header = heif::probe(bytes, SourceFormat::Avif)?;
    check_streams(bytes)?;
    check_color(&header.color)?;
    let image = libavif::decode(bytes).map_err(|e| decode_error(&e))?;
    let (width, height) = (image.width(), image.height());
    let declared = u64::from(probe.width) * u64::from(probe.height);
    if u64::from(width) * u64::from(height) > declared.saturating_mul(FRAME_SLACK) {
        return Err(corrupt(format!(
            "decoded {width}x{height}, larger than the {}x{} the container declares",
            probe.width, probe.height
        )));
    }
    let rgba = libavif::RgbPixels::from(&image);
    drop(image);
    let data = rgba.as_slice();
    if data.len() != width as usize * height as usize * 4 {
        return Err(PipelineError::Internal(format!(
            "libavif gave {} bytes for {width}x{height} RGBA",
            data.len()
        )));
    }
    let mut raster = if data.chunks_exact(4).all(|p| p[3] == 255) {
        let rgb = data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]);
        Raster::new(width, height, Layout::Rgb, rgb.collect())
    } else {
        Raster::new(width, height, Layout::Rgba, data.to_vec())
    };
    drop(rgba);
    if let Some(c) = header.crop {
        raster = crop(&raster, c)?;
    }
    let mut raster = orient(
        raster,
        Orientation::from_exif(Some(u32::from(header.orientation))),
    );
    let (icc, color_applied) = match (header.color.icc, header.color.nclx) {
        (Some(icc), _) => (Some(icc), false),
        (None, Some(n)) => (
            None,
            color::cicp_to_srgb(&mut raster, n.primaries, n.transfer).map_err(corrupt)?,
        ),
        (None, None) => (None, false),
    };
    Ok(Decoded {
        pixels: Pixels::Rgb(raster),
        icc,
        color_applied,
        scale: (1, 1),
    })
}

fn corrupt(detail: impl Into<String>) -> PipelineError {
    PipelineError::corrupt(SourceFormat::Avif, detail)
}

/// Every AV1 item's sequence header must keep its frames near the size of its `ispe`:
/// the decoder allocates for the frame before libavif compares the two.
fn check_streams(bytes: &[u8]) -> Result<(), PipelineError> {
    let file = HeifFile::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
    for item in file.items.iter().filter(|i| &i.item_type.0 == b"av01") {
        let (w, h) = file
            .image_size(item.id)
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt(format!("AV1 item {} has no ispe", item.id)))?;
        let data = file
            .item_data(item.id)
            .map_err(|e| corrupt(e.to_string()))?;
        let seq = sequence::read(&data).map_err(|e| corrupt(format!("item {}: {e}", item.id)))?;
        let declared = u64::from(w) * u64::from(h);
        if seq.max_width > w || seq.max_height > h {
            return Err(corrupt(format!(
                "AV1 item {} holds frames of up to {}x{}, larger than its ispe of {w}x{h}",
                item.id, seq.max_width, seq.max_height
            )));
        }
        if seq.largest_frame() > declared.saturating_mul(FRAME_SLACK).max(FRAME_FLOOR) {
            return Err(PipelineError::UnsupportedFormat(format!(
                "AVIF item {} of {w}x{h} whose AV1 header allows frames of {}x{} bits: \
                 refused before decoding, since the decoder would allocate for them",
                item.id, seq.width_bits, seq.height_bits
            )));
        }
    }
    Ok(())
}

/// Refuses what would come out wrong: HDR transfers (PQ, HLG), which need tone mapping,
/// and YUV matrices libavif does not convert.
fn check_color(color: &HeifColor) -> Result<(), PipelineError> {
    let Some(n) = color.nclx else {
        return Ok(());
    };
    if matches!(n.transfer, 16 | 18) {
        return Err(PipelineError::UnsupportedFormat(format!(
            "HDR AVIF (transfer characteristics {}: {}) cannot be rendered faithfully to \
             8-bit sRGB without tone mapping; it is refused rather than rendered wrongly",
            n.transfer,
            if n.transfer == 16 { "PQ" } else { "HLG" }
        )));
    }
    // H.273 matrices: 0 identity, 1 BT.709, 2 unspecified, 4-10 and 12-13 the BT.601,
    // FCC, SMPTE 240, YCgCo, BT.2020 and chromaticity-derived ones.
    if !matches!(n.matrix, 0..=2 | 4..=10 | 12 | 13) {
        return Err(PipelineError::UnsupportedFormat(format!(
            "AVIF with YUV matrix coefficients {} (H.273), which this decoder does not convert",
            n.matrix
        )));
    }
    Ok(())
}

fn crop(raster: &Raster, c: Crop) -> Result<Raster, PipelineError> {
    if c.x + c.width > raster.width || c.y + c.height > raster.height || c.width == 0 {
        return Err(corrupt(format!(
            "clean aperture {}x{} at ({}, {}) is outside the {}x{} picture",
            c.width, c.height, c.x, c.y, raster.width, raster.height
        )));
    }
    let ch = raster.layout.channels();
    let row = raster.row_bytes();
    let mut out = Vec::with_capacity(c.width as usize * c.height as usize * ch);
    for y in c.y..c.y + c.height {
        let start = y as usize * row + c.x as usize * ch;
        out.extend_from_slice(&raster.data[start..start + c.width as usize * ch]);
    }
    Ok(Raster::new(c.width, c.height, raster.layout, out))
}

/// libavif's result codes (avifResult): a codec that cannot handle the stream is an
/// unsupported format, anything else a corrupt file.
fn decode_error(e: &libavif::Error) -> PipelineError {
    use libavif_sys as sys;
    let libavif::Error::Code(code) = *e else {
        return PipelineError::UnsupportedFormat(format!("AVIF: {e}"));
    };
    let name = match code {
        sys::AVIF_RESULT_INVALID_FTYP => "invalid ftyp",
        sys::AVIF_RESULT_NO_CONTENT => "no content",
        sys::AVIF_RESULT_BMFF_PARSE_FAILED => "box structure cannot be parsed",
        sys::AVIF_RESULT_MISSING_IMAGE_ITEM => "no image item",
        sys::AVIF_RESULT_DECODE_COLOR_FAILED => "AV1 color planes cannot be decoded",
        sys::AVIF_RESULT_DECODE_ALPHA_FAILED => "AV1 alpha plane cannot be decoded",
        sys::AVIF_RESULT_COLOR_ALPHA_SIZE_MISMATCH => "alpha and color sizes differ",
        sys::AVIF_RESULT_ISPE_SIZE_MISMATCH => "ispe does not match the AV1 frame",
        sys::AVIF_RESULT_INVALID_IMAGE_GRID => "invalid image grid",
        sys::AVIF_RESULT_TRUNCATED_DATA => "truncated",
        sys::AVIF_RESULT_UNSUPPORTED_DEPTH
        | sys::AVIF_RESULT_NOT_IMPLEMENTED
        | sys::AVIF_RESULT_NO_CODEC_AVAILABLE => {
            return PipelineError::UnsupportedFormat(format!(
                "AVIF that libavif cannot decode (result {code})"
            ));
        }
        _ => "cannot be decoded",
    };
    corrupt(format!("{name} (libavif result {code})"))
}

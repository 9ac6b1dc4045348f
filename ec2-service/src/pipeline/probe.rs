//! Stage 1, before any pixel is decoded: decide the format from magic bytes (never the
//! file name) and read width, height and frame count from the header, then check them
//! against the limits. Walks headers only; allocates nothing proportional to the
//! declared size, so a 35-byte file claiming 65535x65535 is refused in microseconds.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::PipelineError;
use super::heif;

/// Formats the pipeline decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Tiff,
    Bmp,
    /// HEIF with HEVC pixels (iPhone photos).
    Heic,
    /// HEIF with AV1 pixels.
    Avif,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Gif => "gif",
            SourceFormat::Webp => "webp",
            SourceFormat::Tiff => "tiff",
            SourceFormat::Bmp => "bmp",
            SourceFormat::Heic => "heic",
            SourceFormat::Avif => "avif",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Ceilings checked before decoding. The defaults let a 200 MP phone photo through
/// and refuse decompression bombs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest source accepted, in bytes.
    pub max_source_bytes: u64,
    /// Widest source accepted, in pixels.
    pub max_width: u32,
    /// Tallest source accepted, in pixels.
    pub max_height: u32,
    /// Most pixels (width x height) accepted.
    pub max_pixels: u64,
    /// Most frames or pages accepted (only the first is rendered).
    pub max_frames: u32,
    /// Most memory one decode may take, in bytes, as estimated from the header before
    /// decoding (JPEGs are estimated at the reduced scale they are decoded at).
    pub max_decode_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 200 * 1024 * 1024,
            max_width: 30_000,
            max_height: 30_000,
            max_pixels: 250_000_000,
            max_frames: 1_000,
            max_decode_bytes: 1 << 30,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("limits.max_source_bytes", self.max_source_bytes),
            ("limits.max_width", u64::from(self.max_width)),
            ("limits.max_height", u64::from(self.max_height)),
            ("limits.max_pixels", self.max_pixels),
            ("limits.max_frames", u64::from(self.max_frames)),
            ("limits.max_decode_bytes", self.max_decode_bytes),
        ];
        for (key, value) in checks {
            if value == 0 {
                return Err(format!("{key}: must be greater than 0"));
            }
        }
        Ok(())
    }

    /// Refuses a source by size alone (used before downloading, from HEAD).
    pub fn check_source_bytes(&self, size: u64) -> Result<(), PipelineError> {
        if size > self.max_source_bytes {
            return Err(PipelineError::SourceTooLarge {
                size,
                limit: self.max_source_bytes,
            });
        }
        Ok(())
    }
}

/// What the header says about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format: SourceFormat,
    /// Stored width (before EXIF orientation).
    pub width: u32,
    /// Stored height (before EXIF orientation).
    pub height: u32,
    /// Frames (GIF, APNG, animated WebP), pages (TIFF) or top-level images (HEIF); 1
    /// for still images.
    pub frames: u32,
    /// The orientation the container itself applies on decode (HEIF `irot`/`imir`, as
    /// the equivalent EXIF value); `None` where the EXIF tag says it.
    pub container_orientation: Option<u16>,
    /// Progressive JPEG: libjpeg holds every DCT coefficient of the full-size image.
    pub progressive: bool,
    /// Lossless JPEG: decoded at full size only.
    pub lossless: bool,
    /// Peak bytes the decoder holds per decoded pixel (output and working buffers).
    pub decode_bytes_per_pixel: u64,
    /// Bytes of DCT coefficients a progressive JPEG decode holds (every component at
    /// its own resolution, whole blocks, 2 bytes each); 0 otherwise.
    pub coefficient_bytes: u64,
}

impl Probe {
    /// Estimated peak memory of decoding at `decoded` size (the reduced JPEG size, or
    /// the full size for other formats) and turning the result upright.
    pub fn decode_memory(&self, decoded: (u32, u32), reoriented: bool) -> u64 {
        let pixels = u64::from(decoded.0) * u64::from(decoded.1);
        let orient_copy = if reoriented { 4 } else { 0 };
        pixels * (self.decode_bytes_per_pixel + orient_copy) + self.coefficient_bytes
    }
}

/// Decides the format from the first bytes.
pub fn sniff(bytes: &[u8]) -> Result<SourceFormat, PipelineError> {
    if bytes.is_empty() {
        return Err(PipelineError::EmptySource);
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Ok(SourceFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Ok(SourceFormat::Png)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Ok(SourceFormat::Gif)
    } else if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Ok(SourceFormat::Webp)
    } else if starts(b"II*\0") || starts(b"MM\0*") || starts(b"II+\0") || starts(b"MM\0+") {
        Ok(SourceFormat::Tiff)
    } else if starts(b"BM") && bytes.len() >= 18 {
        Ok(SourceFormat::Bmp)
    } else if let Some(format) = heif::sniff_brand(bytes) {
        Ok(format)
    } else {
        Err(PipelineError::UnsupportedFormat(describe_unknown(bytes)))
    }
}

fn describe_unknown(bytes: &[u8]) -> String {
    let known: [(&[u8], &str); 6] = [
        (b"%PDF", "PDF document"),
        (b"<svg", "SVG"),
        (b"<?xml", "XML/SVG"),
        (b"PK\x03\x04", "ZIP archive"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
        (b"8BPS", "Photoshop document"),
    ];
    for (magic, name) in known {
        if bytes.starts_with(magic) {
            return format!("{name} is not a supported image format");
        }
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = String::from_utf8_lossy(&bytes[8..12]).into_owned();
        return format!("ISO media file of brand {brand:?} is not a HEIC or AVIF image");
    }
    let head: String = bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    format!("no known image signature (first bytes: {head})")
}

/// How much of the start of a source holds its header, for a probe before the whole file
/// is read: JPEG frame headers come after the EXIF, ICC and XMP segments (64 KiB at most
/// each), HEIF's meta box before the media data.
pub const HEADER_BYTES: u64 = 1 << 20;

/// Reads the header and checks the limits. Nothing proportional to the declared image
/// size is allocated.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, PipelineError> {
    limits.check_source_bytes(bytes.len() as u64)?;
    let format = sniff(bytes)?;
    let corrupt = move |detail: &str| PipelineError::corrupt(format, detail);
    let frame_cap = limits.max_frames.saturating_add(1);
    let mut progressive = false;
    let mut lossless = false;
    let mut coefficient_bytes = 0;
    let mut decode_bytes_per_pixel = 8;
    let mut container_orientation = None;
    let mut format = format;
    let (width, height, frames) = match format {
        SourceFormat::Jpeg => {
            let sof = jpeg_frame(bytes).ok_or_else(|| corrupt("no frame header"))?;
            progressive = sof.progressive;
            lossless = sof.lossless;
            if sof.progressive {
                coefficient_bytes = sof.coefficient_bytes;
            }
            // RGB out (3) and libjpeg's rows; CMYK adds the ink buffer and its
            // inverted copy before the RGB.
            decode_bytes_per_pixel = if sof.components == 4 { 11 } else { 4 };
            (sof.width, sof.height, 1)
        }
        SourceFormat::Png => {
            decode_bytes_per_pixel = png_bytes_per_pixel(bytes);
            png_size(bytes).ok_or_else(|| corrupt("bad IHDR"))?
        }
        SourceFormat::Gif => gif_size(bytes, frame_cap).ok_or_else(|| corrupt("bad header"))?,
        SourceFormat::Webp => webp_size(bytes, frame_cap).ok_or_else(|| corrupt("bad header"))?,
        SourceFormat::Tiff => tiff_size(bytes, frame_cap).ok_or_else(|| corrupt("bad IFD"))?,
        SourceFormat::Bmp => bmp_size(bytes).ok_or_else(|| corrupt("bad header"))?,
        SourceFormat::Heic | SourceFormat::Avif => {
            let header = heif::probe(bytes, format)?;
            // The primary item's codec decides (a `mif1` file may hold either).
            format = header.format;
            container_orientation = Some(header.orientation);
            // The decoder's planes and tiles at up to 16 bits, the assembled RGBA at 16
            // bits, then the 8-bit result.
            decode_bytes_per_pixel = 20;
            (header.width, header.height, header.images)
        }
    };
    let corrupt = |detail: &str| PipelineError::corrupt(format, detail);
    if width == 0 || height == 0 {
        return Err(corrupt(&format!("declares {width}x{height} pixels")));
    }
    if width > u64::from(limits.max_width) || height > u64::from(limits.max_height) {
        return Err(PipelineError::DimensionsTooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let pixels = width * height;
    if pixels > limits.max_pixels {
        return Err(PipelineError::TooManyPixels {
            pixels,
            limit: limits.max_pixels,
        });
    }
    if frames > u64::from(limits.max_frames) {
        return Err(PipelineError::TooManyFrames {
            frames,
            limit: limits.max_frames,
        });
    }
    Ok(Probe {
        format,
        // Both fit: they are within max_width/max_height, which are u32.
        width: width as u32,
        height: height as u32,
        frames: frames.max(1) as u32,
        container_orientation,
        progressive,
        lossless,
        decode_bytes_per_pixel,
        coefficient_bytes,
    })
}

/// Decoder output per pixel from IHDR, plus the 8-bit RGB(A) copy when that is not
/// already what the decoder gives.
fn png_bytes_per_pixel(bytes: &[u8]) -> u64 {
    let b = Bytes(bytes);
    let (Some(depth), Some(kind)) = (b.u8(24), b.u8(25)) else {
        return 8;
    };
    let channels = match kind {
        0 => 1,
        2 => 3,
        3 => 4, // palette expands to RGB(A)
        4 => 2,
        _ => 4,
    };
    let wide = if depth == 16 { 2 } else { 1 };
    let converted = if wide == 1 && matches!(kind, 2 | 3 | 6) {
        0
    } else {
        4
    };
    channels * wide + converted
}

/// Bounds-checked big/little-endian reads.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn slice(&self, at: usize, len: usize) -> Option<&[u8]> {
        self.0.get(at..at.checked_add(len)?)
    }
    fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    fn u16be(&self, at: usize) -> Option<u16> {
        self.slice(at, 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u16le(&self, at: usize) -> Option<u16> {
        self.slice(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u16(&self, at: usize, le: bool) -> Option<u16> {
        if le { self.u16le(at) } else { self.u16be(at) }
    }
    fn u24le(&self, at: usize) -> Option<u32> {
        self.slice(at, 3)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }
    fn u32be(&self, at: usize) -> Option<u32> {
        self.slice(at, 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32le(&self, at: usize) -> Option<u32> {
        self.slice(at, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32(&self, at: usize, le: bool) -> Option<u32> {
        if le { self.u32le(at) } else { self.u32be(at) }
    }
    fn u64(&self, at: usize, le: bool) -> Option<u64> {
        self.slice(at, 8).map(|b| {
            let a: [u8; 8] = b.try_into().unwrap_or_default();
            if le {
                u64::from_le_bytes(a)
            } else {
                u64::from_be_bytes(a)
            }
        })
    }
}

/// What a JPEG's frame header (SOFn) says.
struct JpegFrame {
    width: u64,
    height: u64,
    progressive: bool,
    lossless: bool,
    components: u8,
    /// Whole 8x8 blocks of every component at its sampling, 2 bytes a coefficient.
    coefficient_bytes: u64,
}

/// Walks JPEG markers up to the first SOFn.
fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let b = Bytes(bytes);
    let mut at = 2;
    loop {
        // Skip fill bytes before a marker.
        while b.u8(at)? == 0xFF && b.u8(at + 1)? == 0xFF {
            at += 1;
        }
        if b.u8(at)? != 0xFF {
            return None;
        }
        let marker = b.u8(at + 1)?;
        at += 2;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = usize::from(b.u16be(at)?);
        if len < 2 {
            return None;
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let height = u64::from(b.u16be(at + 3)?);
            let width = u64::from(b.u16be(at + 5)?);
            let components = b.u8(at + 7)?;
            let sampling: Vec<(u64, u64)> = (0..usize::from(components))
                .map(|i| {
                    b.u8(at + 9 + 3 * i)
                        .map(|f| (u64::from(f >> 4).max(1), u64::from(f & 0x0F).max(1)))
                })
                .collect::<Option<_>>()?;
            let h_max = sampling.iter().map(|s| s.0).max().unwrap_or(1);
            let v_max = sampling.iter().map(|s| s.1).max().unwrap_or(1);
            // Each component covers whole MCUs: the image padded to 8 * max factor.
            let mcu_w = width.div_ceil(8 * h_max);
            let mcu_h = height.div_ceil(8 * v_max);
            let coefficient_bytes = sampling
                .iter()
                .map(|(h, v)| mcu_w * h * 8 * mcu_h * v * 8 * 2)
                .sum();
            return Some(JpegFrame {
                width,
                height,
                progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
                components,
                coefficient_bytes,
            });
        }
        at += len;
    }
}

/// IHDR, and acTL (frame count of an APNG) if it comes before the image data.
fn png_size(bytes: &[u8]) -> Option<(u64, u64, u64)> {
    let b = Bytes(bytes);
    if b.slice(12, 4)? != b"IHDR" {
        return None;
    }
    let width = u64::from(b.u32be(16)?);
    let height = u64::from(b.u32be(20)?);
    let mut frames = 1;
    let mut at = 8usize;
    while let (Some(len), Some(kind)) = (b.u32be(at), b.slice(at + 4, 4)) {
        match kind {
            b"acTL" => {
                frames = u64::from(b.u32be(at + 8)?);
                break;
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        at = at.checked_add(12)?.checked_add(len as usize)?;
    }
    Some((width, height, frames))
}

/// Logical screen and every image descriptor (a frame may be larger than the screen);
/// counts frames by skipping data sub-blocks, stopping at `frame_cap`.
fn gif_size(bytes: &[u8], frame_cap: u32) -> Option<(u64, u64, u64)> {
    let b = Bytes(bytes);
    let mut width = u64::from(b.u16le(6)?);
    let mut height = u64::from(b.u16le(8)?);
    let flags = b.u8(10)?;
    let mut at = 13usize;
    if flags & 0x80 != 0 {
        at += 3 << ((flags & 0x07) + 1);
    }
    let mut frames = 0u64;
    let skip_sub_blocks = |mut at: usize| -> Option<usize> {
        loop {
            let n = usize::from(b.u8(at)?);
            at += 1 + n;
            if n == 0 {
                return Some(at);
            }
        }
    };
    while let Some(kind) = b.u8(at) {
        match kind {
            0x2C => {
                let left = u64::from(b.u16le(at + 1)?);
                let top = u64::from(b.u16le(at + 3)?);
                width = width.max(left + u64::from(b.u16le(at + 5)?));
                height = height.max(top + u64::from(b.u16le(at + 7)?));
                let f = b.u8(at + 9)?;
                at += 10;
                if f & 0x80 != 0 {
                    at += 3 << ((f & 0x07) + 1);
                }
                frames += 1;
                if frames >= u64::from(frame_cap) {
                    break;
                }
                // LZW minimum code size, then the data sub-blocks.
                let Some(next) = b.u8(at).and_then(|_| skip_sub_blocks(at + 1)) else {
                    break; // truncated: the decoder reports it if the first frame is hurt
                };
                at = next;
            }
            0x21 => match skip_sub_blocks(at + 2) {
                Some(next) => at = next,
                None => break,
            },
            _ => break, // 0x3B trailer or garbage after the last frame
        }
    }
    if frames == 0 {
        return None;
    }
    Some((width, height, frames))
}

/// VP8 / VP8L / VP8X headers; ANMF chunks counted for animations.
fn webp_size(bytes: &[u8], frame_cap: u32) -> Option<(u64, u64, u64)> {
    let b = Bytes(bytes);
    let kind = b.slice(12, 4)?;
    let data = 20;
    match kind {
        b"VP8 " => {
            if b.slice(data + 3, 3)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            let w = b.u16le(data + 6)? & 0x3FFF;
            let h = b.u16le(data + 8)? & 0x3FFF;
            Some((u64::from(w), u64::from(h), 1))
        }
        b"VP8L" => {
            if b.u8(data)? != 0x2F {
                return None;
            }
            let bits = b.u32le(data + 1)?;
            let w = (bits & 0x3FFF) + 1;
            let h = ((bits >> 14) & 0x3FFF) + 1;
            Some((u64::from(w), u64::from(h), 1))
        }
        b"VP8X" => {
            let w = u64::from(b.u24le(data + 4)?) + 1;
            let h = u64::from(b.u24le(data + 7)?) + 1;
            let animated = b.u8(data)? & 0x02 != 0;
            let mut frames = 0u64;
            if animated {
                let mut at = 12usize;
                while let (Some(kind), Some(len)) = (b.slice(at, 4), b.u32le(at + 4)) {
                    if kind == b"ANMF" {
                        frames += 1;
                        if frames >= u64::from(frame_cap) {
                            break;
                        }
                    }
                    let padded = (len as usize).checked_add(len as usize & 1)?;
                    at = at.checked_add(8)?.checked_add(padded)?;
                }
            }
            Some((w, h, frames.max(1)))
        }
        _ => None,
    }
}

/// IFD0's ImageWidth/ImageLength; the IFD chain counted as pages (classic and BigTIFF).
fn tiff_size(bytes: &[u8], frame_cap: u32) -> Option<(u64, u64, u64)> {
    let b = Bytes(bytes);
    let le = b.slice(0, 2)? == b"II";
    let big = b.u16(2, le)? == 43;
    let (mut ifd, entry_size, count_size) = if big {
        (b.u64(8, le)?, 20usize, 8usize)
    } else {
        (u64::from(b.u32(4, le)?), 12usize, 2usize)
    };
    let mut size = None;
    let mut pages = 0u64;
    let mut seen = Vec::new();
    while ifd != 0 && pages < u64::from(frame_cap) {
        if seen.contains(&ifd) {
            break; // a loop in the IFD chain
        }
        seen.push(ifd);
        let at = usize::try_from(ifd).ok()?;
        let count = if big {
            usize::try_from(b.u64(at, le)?).ok()?
        } else {
            usize::from(b.u16(at, le)?)
        };
        if size.is_none() {
            let (mut w, mut h) = (None, None);
            for i in 0..count.min(4096) {
                let e = at + count_size + i * entry_size;
                let tag = b.u16(e, le)?;
                let kind = b.u16(e + 2, le)?;
                let value_at = e + if big { 12 } else { 8 };
                let value = match kind {
                    3 => u64::from(b.u16(value_at, le)?),
                    4 => u64::from(b.u32(value_at, le)?),
                    16 => b.u64(value_at, le)?,
                    _ => continue,
                };
                match tag {
                    256 => w = Some(value),
                    257 => h = Some(value),
                    _ => {}
                }
            }
            size = Some((w?, h?));
        }
        pages += 1;
        let next_at = at
            .checked_add(count_size)?
            .checked_add(count.checked_mul(entry_size)?)?;
        ifd = if big {
            b.u64(next_at, le).unwrap_or(0)
        } else {
            u64::from(b.u32(next_at, le).unwrap_or(0))
        };
    }
    let (w, h) = size?;
    Some((w, h, pages))
}

fn bmp_size(bytes: &[u8]) -> Option<(u64, u64, u64)> {
    let b = Bytes(bytes);
    let header = b.u32le(14)?;
    if header == 12 {
        return Some((u64::from(b.u16le(18)?), u64::from(b.u16le(20)?), 1));
    }
    let w = b.u32le(18)? as i32;
    let h = b.u32le(22)? as i32;
    if w <= 0 {
        return None;
    }
    Some((u64::from(w.unsigned_abs()), u64::from(h.unsigned_abs()), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gif(screen: (u16, u16), frames: usize) -> Vec<u8> {
        let mut g = b"GIF89a".to_vec();
        g.extend(screen.0.to_le_bytes());
        g.extend(screen.1.to_le_bytes());
        g.extend([0, 0, 0]);
        for _ in 0..frames {
            g.extend([0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
            g.push(0x2C);
            g.extend([0, 0, 0, 0]);
            g.extend(screen.0.to_le_bytes());
            g.extend(screen.1.to_le_bytes());
            g.push(0);
            g.extend([2, 2, 0x4C, 0x01, 0]);
        }
        g.push(0x3B);
        g
    }

    #[test]
    fn formats_are_decided_by_magic_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest").unwrap(), SourceFormat::Jpeg);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").unwrap(), SourceFormat::Webp);
        assert_eq!(sniff(b"MM\0*\0\0\0\x08").unwrap(), SourceFormat::Tiff);
        assert!(matches!(sniff(b""), Err(PipelineError::EmptySource)));
        let err = sniff(b"hello, this is text").unwrap_err();
        assert_eq!(err.code(), "unsupported-format");
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic").unwrap(),
            SourceFormat::Heic
        );
        let err = sniff(b"\0\0\0\x14ftypisom\0\0\0\0mp41").unwrap_err();
        assert!(err.to_string().contains("not a HEIC or AVIF"), "{err}");
    }

    #[test]
    fn a_tiny_gif_claiming_65535_square_is_refused_from_the_header() {
        let bomb = gif((65535, 65535), 1);
        assert!(bomb.len() < 1024);
        let err = probe(&bomb, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "dimensions-too-large");
        let roomy = Limits {
            max_width: 70_000,
            max_height: 70_000,
            ..Limits::default()
        };
        assert_eq!(probe(&bomb, &roomy).unwrap_err().code(), "too-many-pixels");
    }

    #[test]
    fn gif_frames_are_counted_and_capped() {
        let p = probe(&gif((10, 10), 5), &Limits::default()).unwrap();
        assert_eq!((p.width, p.height, p.frames), (10, 10, 5));
        let few = Limits {
            max_frames: 3,
            ..Limits::default()
        };
        let err = probe(&gif((10, 10), 50), &few).unwrap_err();
        assert_eq!(err.code(), "too-many-frames");
    }

    #[test]
    fn source_size_is_checked_first() {
        let small = Limits {
            max_source_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            probe(&gif((10, 10), 1), &small).unwrap_err().code(),
            "source-too-large"
        );
    }

    #[test]
    fn truncated_headers_are_corrupt_not_panics() {
        let full = gif((10, 10), 1);
        for len in 1..full.len() {
            let _ = probe(&full[..len], &Limits::default());
        }
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0";
        assert_eq!(
            probe(png, &Limits::default()).unwrap_err().code(),
            "corrupt-image"
        );
        let jpeg = b"\xFF\xD8\xFF\xE0\x00\x10JFIF";
        assert_eq!(
            probe(jpeg, &Limits::default()).unwrap_err().code(),
            "corrupt-image"
        );
    }
}

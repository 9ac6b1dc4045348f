//! The processing core: source bytes and a recipe in, encoded variants and metadata out.
//!
//! Pure: no file, network or clock beyond stage timings, no async runtime. The daemon
//! and the `process` command call [`render`] on a rayon pool. The stages, in order:
//!
//! 1. [`probe`]: format from magic bytes, header dimensions and frame count, checked
//!    against the [`Limits`] before any pixel is decoded.
//! 2. [`decode`]: once, at the smallest JPEG DCT scale that still serves every variant.
//! 3. [`color`]: non-sRGB ICC and CMYK sources converted to sRGB.
//! 4. [`orient`]: the EXIF orientation applied to the pixels, exactly once.
//! 5. [`resize`]: each variant from the smallest already-rendered image that is large
//!    enough (large from the decode, medium from large, thumb from medium).
//! 6. [`watermark`]: on the variants that ask for it.
//! 7. [`encode`]: in parallel, with no metadata in the outputs.
//!
//! Beside them, [`exif`] and [`fingerprint`] produce the metadata for the record.

pub mod color;
pub mod decode;
pub mod encode;
pub mod error;
pub mod exif;
pub mod fingerprint;
pub mod orient;
pub mod probe;
pub mod raster;
pub mod recipe;
pub mod resize;
pub mod watermark;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::PipelineError;
pub use exif::{Camera, Gps};
pub use probe::{Limits, SourceFormat};
pub use raster::{Layout, Raster};
pub use recipe::{Fit, OutputFormat, Recipe, VariantSpec};
pub use watermark::{Anchor, Mark, Watermark};

use orient::Orientation;

/// What the record says about a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub format: SourceFormat,
    /// Width after orientation.
    pub width: u32,
    /// Height after orientation.
    pub height: u32,
    /// The EXIF orientation that was applied (1 when absent or invalid).
    pub orientation: u16,
    /// Frames (animations) or pages (TIFF); only the first is rendered.
    pub frames: u32,
    /// The source has transparent pixels.
    pub has_alpha: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icc_description: Option<String>,
    /// The pixels were converted from the source's ICC profile (or CMYK) to sRGB.
    pub converted_to_srgb: bool,
    #[serde(skip_serializing_if = "Camera::is_empty", default)]
    pub camera: Camera,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gps: Option<Gps>,
    pub source_bytes: u64,
    /// SHA-256 of the source bytes, hex.
    pub sha256: String,
    pub perceptual_hash: String,
    pub blur_hash: String,
    pub dominant_color: String,
}

/// One encoded output.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedVariant {
    pub name: String,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub watermarked: bool,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for RenderedVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RenderedVariant({} {}x{} {:?}, {} bytes)",
            self.name,
            self.width,
            self.height,
            self.format,
            self.bytes.len()
        )
    }
}

/// Wall time of each stage of one render.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    #[serde(with = "millis")]
    pub probe: Duration,
    /// Decode (with the source hash computed beside it).
    #[serde(with = "millis")]
    pub decode: Duration,
    #[serde(with = "millis")]
    pub color: Duration,
    #[serde(with = "millis")]
    pub orient: Duration,
    #[serde(with = "millis")]
    pub resize: Duration,
    /// Watermark and encode of every variant, with the fingerprints beside them.
    #[serde(with = "millis")]
    pub encode: Duration,
    #[serde(with = "millis")]
    pub total: Duration,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e4).round() / 10.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    }
}

/// The result of rendering one source.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub metadata: Metadata,
    pub variants: Vec<RenderedVariant>,
    pub timings: StageTimings,
    /// JPEG DCT scale the source was decoded at (numerator, denominator).
    pub decode_scale: (u32, u32),
}

/// Renders every variant of `recipe` from `source` and extracts its metadata.
///
/// A panic anywhere below (a decoder bug on a hostile file) is caught and returned as
/// [`PipelineError::Internal`], so one bad source never takes the caller down.
pub fn render(
    source: &[u8],
    recipe: &Recipe,
    limits: &Limits,
    watermark: Option<&Watermark>,
) -> Result<Rendered, PipelineError> {
    catch_unwind(AssertUnwindSafe(|| {
        render_stages(source, recipe, limits, watermark)
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        Err(PipelineError::Internal(message))
    })
}

/// One variant's place in the render order.
struct Plan<'r> {
    index: usize,
    spec: &'r VariantSpec,
    /// Output size.
    width: u32,
    height: u32,
    /// Scale relative to the full-resolution upright source.
    scale: f64,
}

fn render_stages(
    source: &[u8],
    recipe: &Recipe,
    limits: &Limits,
    watermark: Option<&Watermark>,
) -> Result<Rendered, PipelineError> {
    let started = Instant::now();
    let mut timings = StageTimings::default();
    let mut lap = Instant::now();
    let mut split = |slot: &mut Duration| {
        *slot = lap.elapsed();
        lap = Instant::now();
    };

    let probe = probe::probe(source, limits)?;
    let exif = exif::read(source, probe.format);
    let orientation = Orientation::from_exif(exif.orientation);
    let (width, height) = orientation.upright_size(probe.width, probe.height);
    let mut plans: Vec<Plan> = recipe
        .variants
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let (w, h) = resize::output_size(width, height, spec.fit, spec.width, spec.height);
            let scale = resize::scale_of(width, height, spec.fit, spec.width, spec.height);
            Plan {
                index,
                spec,
                width: w,
                height: h,
                scale,
            }
        })
        .collect();
    plans.sort_by(|a, b| b.scale.total_cmp(&a.scale));
    split(&mut timings.probe);

    // Decode no smaller than the largest variant (and the analysis image) needs.
    let max_scale = plans.first().map_or(1.0, |p| p.scale).min(1.0);
    let need = |side: u32| {
        let scaled = (f64::from(side) * max_scale).ceil() as u32;
        scaled.max(fingerprint::ANALYSIS_SIDE.min(side)).min(side)
    };
    let min_stored = if orientation.swaps_axes() {
        (need(height), need(width))
    } else {
        (need(width), need(height))
    };
    let decoded_size = match probe.format {
        SourceFormat::Jpeg => {
            let f = decode::jpeg_scale(probe.width, probe.height, min_stored);
            (
                f.scale(probe.width as usize) as u32,
                f.scale(probe.height as usize) as u32,
            )
        }
        _ => (probe.width, probe.height),
    };
    let memory = probe.decode_memory(decoded_size, orientation != Orientation::UPRIGHT);
    if memory > limits.max_decode_bytes {
        return Err(PipelineError::MemoryLimit(format!(
            "decoding this {}x{} {} needs about {} MiB, over limits.max_decode_bytes ({} MiB)",
            probe.width,
            probe.height,
            probe.format,
            memory >> 20,
            limits.max_decode_bytes >> 20
        )));
    }
    let (sha256, decoded) = rayon::join(
        || sha256_hex(source),
        || decode::decode(source, &probe, min_stored),
    );
    let decoded = decoded?;
    let decode_scale = decoded.scale;
    split(&mut timings.decode);

    let mut raster = decoded.raster;
    let color = if decoded.color_applied {
        color::ColorReport {
            icc_description: decoded.icc.as_deref().and_then(color::icc_description),
            converted: true,
        }
    } else {
        color::to_srgb(&mut raster, decoded.icc.as_deref())
    };
    let has_alpha = raster.has_transparency();
    split(&mut timings.color);

    let base = orient::orient(raster, orientation);
    split(&mut timings.orient);

    // Each variant comes from the smallest full-frame image already rendered that is
    // at least as large as it needs; cover variants are cropped and serve no other.
    // `images[0]` is the upright decode; `full_frames` and `outputs` index into `images`.
    let mut images: Vec<Raster> = vec![base];
    let mut full_frames: Vec<usize> = vec![0];
    let mut outputs: Vec<(usize, usize)> = Vec::with_capacity(plans.len());
    for plan in &plans {
        let needed_w = f64::from(width) * plan.scale.min(1.0) - 0.5;
        let needed_h = f64::from(height) * plan.scale.min(1.0) - 0.5;
        let from = full_frames
            .iter()
            .rev()
            .map(|&i| &images[i])
            .find(|r| f64::from(r.width) >= needed_w && f64::from(r.height) >= needed_h)
            .unwrap_or(&images[0]);
        let out = match plan.spec.fit {
            Fit::Inside => resize::resize(from, plan.width, plan.height)?,
            Fit::Cover => resize::resize_cover(from, plan.width, plan.height)?,
        };
        images.push(out);
        let id = images.len() - 1;
        if plan.spec.fit == Fit::Inside {
            full_frames.push(id);
        }
        outputs.push((plan.index, id));
    }
    split(&mut timings.resize);

    // The analysis image comes from the smallest full frame that still has detail.
    let analysis = full_frames
        .iter()
        .rev()
        .map(|&i| &images[i])
        .find(|r| {
            r.width >= 2 * fingerprint::ANALYSIS_SIDE && r.height >= 2 * fingerprint::ANALYSIS_SIDE
        })
        .unwrap_or(&images[0]);
    let background = recipe.background_rgb();
    let (encoded, fingerprints) = rayon::join(
        || {
            outputs
                .par_iter()
                .map(|&(index, image)| {
                    let raster = &images[image];
                    let spec = &recipe.variants[index];
                    let marked;
                    let pixels = match (spec.watermark, watermark) {
                        (true, Some(wm)) => {
                            let mut copy = raster.clone();
                            wm.apply(&mut copy)?;
                            marked = copy;
                            &marked
                        }
                        _ => raster,
                    };
                    let bytes = encode::encode(pixels, spec.format, spec.quality, background)
                        .map_err(|detail| PipelineError::Encode {
                            variant: spec.name.clone(),
                            format: spec.format.name(),
                            detail,
                        })?;
                    Ok((
                        index,
                        RenderedVariant {
                            name: spec.name.clone(),
                            format: spec.format,
                            width: raster.width,
                            height: raster.height,
                            watermarked: spec.watermark && watermark.is_some(),
                            bytes,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, PipelineError>>()
        },
        || fingerprint::fingerprints(analysis),
    );
    let mut encoded = encoded?;
    let fingerprints = fingerprints?;
    encoded.sort_by_key(|(index, _)| *index);
    split(&mut timings.encode);
    timings.total = started.elapsed();

    Ok(Rendered {
        metadata: Metadata {
            format: probe.format,
            width,
            height,
            orientation: orientation.value(),
            frames: probe.frames,
            has_alpha,
            icc_description: color.icc_description,
            converted_to_srgb: color.converted,
            camera: exif.camera,
            gps: exif.gps,
            source_bytes: source.len() as u64,
            sha256,
            perceptual_hash: fingerprints.perceptual_hash,
            blur_hash: fingerprints.blur_hash,
            dominant_color: fingerprints.dominant_color,
        },
        variants: encoded.into_iter().map(|(_, v)| v).collect(),
        timings,
        decode_scale,
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

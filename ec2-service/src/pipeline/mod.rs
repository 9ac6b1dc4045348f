//! The processing core: source bytes and a recipe in, encoded variants and metadata out.
//!
//! Pure: no file, network or clock beyond stage timings, no async runtime. The daemon
//! and the `process` command call [`render`] on a rayon pool. The stages, in order:
//!
//! 1. [`probe`]: format from magic bytes, header dimensions and frame count, checked
//!    against the [`Limits`] before any pixel is decoded.
//! 2. [`decode`]: once, at the smallest JPEG DCT scale that still serves every variant
//!    ([`plan`] works it out from the header). A JPEG that needs no color conversion,
//!    for a recipe of unwatermarked JPEG variants, is decoded to YCbCr [`planes`] and
//!    stays planar until it is encoded.
//! 3. [`color`]: non-sRGB ICC and CMYK sources converted to sRGB.
//! 4. [`resize`]: each variant, in the stored orientation, from the smallest image
//!    already made that is large enough (large from the decode, medium from large, thumb
//!    from medium).
//! 5. [`orient`]: each resized variant turned upright by its EXIF orientation, exactly
//!    once (turning commutes with resizing, so it is done on the smallest image).
//! 6. [`watermark`]: on the variants that ask for it.
//! 7. [`encode`]: each variant on its own task while the next is resized, with no
//!    metadata in the outputs; JPEG Huffman tables made optimal by [`huffman`].
//!
//! Beside them, [`exif`] and [`fingerprint`] produce the metadata for the record (the
//! fingerprints from the smallest full rendition), and [`timing`] measures every stage.

pub mod av1;
pub mod color;
pub mod decode;
pub mod encode;
pub mod error;
pub mod exif;
pub mod fingerprint;
pub mod heif;
pub mod huffman;
pub mod orient;
pub mod plan;
pub mod planes;
pub mod probe;
pub mod raster;
pub mod recipe;
pub mod resize;
pub mod timing;
pub mod watermark;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::PipelineError;
pub use exif::{Camera, Gps};
pub use planes::Pixels;
pub use probe::{Limits, Probe, SourceFormat};
pub use raster::{Layout, Raster};
pub use recipe::{Fit, OutputFormat, Recipe, VariantSpec};
pub use timing::{PerStage, Stage, StageTimings};
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

/// An upper bound of the peak bytes a render of a source with this header takes with
/// this recipe, besides the source bytes themselves, whatever its EXIF orientation; for
/// charging a memory budget before the source is read. A source whose decode would
/// exceed `limits.max_decode_bytes` is refused before anything is allocated, so it costs
/// only the fixed part.
pub fn memory_estimate(probe: &Probe, recipe: &Recipe, limits: &Limits) -> u64 {
    [Orientation::UPRIGHT, Orientation::from_exif(Some(6))]
        .into_iter()
        .map(|o| {
            let plan = plan::plan(probe, recipe, o);
            if probe.decode_memory(plan.decoded, false) > limits.max_decode_bytes {
                plan::FIXED_BYTES
            } else {
                plan::memory_bound(probe, &plan)
            }
        })
        .max()
        .unwrap_or(plan::FIXED_BYTES)
}

/// Whether every variant can be made on the JPEG fast path (YCbCr planes from decode to
/// encode): all JPEG, none watermarked.
fn planes_serve(recipe: &Recipe, watermark: Option<&Watermark>) -> bool {
    recipe
        .variants
        .iter()
        .all(|v| v.format == OutputFormat::Jpeg && !(v.watermark && watermark.is_some()))
}

fn render_stages(
    source: &[u8],
    recipe: &Recipe,
    limits: &Limits,
    watermark: Option<&Watermark>,
) -> Result<Rendered, PipelineError> {
    let clock = timing::Clock::new();
    let probe = clock.time(Stage::Probe, || probe::probe(source, limits))?;
    let exif = clock.time(Stage::Metadata, || exif::read(source, probe.format));
    // A HEIF decoder applies the container's own rotation and mirror; the EXIF tag
    // inside such a file is informative only. Either way it is applied exactly once.
    let (orientation, applied) = match probe.container_orientation {
        Some(value) => (Orientation::UPRIGHT, value),
        None => {
            let o = Orientation::from_exif(exif.orientation);
            (o, o.value())
        }
    };
    let mut plan = plan::plan(&probe, recipe, orientation);

    let memory = probe.decode_memory(plan.decoded, false);
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
    let planes_ok = planes_serve(recipe, watermark);
    let (sha256, decoded) = rayon::join(
        || clock.time(Stage::Metadata, || sha256_hex(source)),
        || {
            clock.time(Stage::Decode, || {
                decode::decode(source, &probe, plan.min_stored, planes_ok)
            })
        },
    );
    let decoded = decoded?;
    let decode_scale = decoded.scale;
    // A container's crop can make the picture a little smaller than its header says:
    // the variants follow the decoded picture.
    if decoded.pixels.size() != plan.decoded && probe.format != SourceFormat::Jpeg {
        let (w, h) = decoded.pixels.size();
        let actual = Probe {
            width: w,
            height: h,
            ..probe.clone()
        };
        plan = plan::plan(&actual, recipe, orientation);
    }
    let (width, height) = plan.upright;

    let mut pixels = decoded.pixels;
    let (color, has_alpha) = clock.time(Stage::Color, || match &mut pixels {
        Pixels::Rgb(raster) => {
            let report = if decoded.color_applied {
                color::ColorReport {
                    icc_description: decoded.icc.as_deref().and_then(color::icc_description),
                    converted: true,
                }
            } else {
                color::to_srgb(raster, decoded.icc.as_deref())
            };
            (report, raster.has_transparency())
        }
        // Only sources that need no conversion are decoded to planes.
        Pixels::Planes(_) => (
            color::ColorReport {
                icc_description: decoded.icc.as_deref().and_then(color::icc_description),
                converted: false,
            },
            false,
        ),
    });

    let background = recipe.background_rgb();
    let finished: Mutex<Vec<(usize, RenderedVariant)>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<PipelineError>> = Mutex::new(None);
    let fail = |e: PipelineError| {
        if let Ok(mut slot) = failed.lock() {
            slot.get_or_insert(e);
        }
    };
    let mut fingerprints = None;
    // Variants are resized in stored orientation, each from the smallest full frame
    // already made that is large enough (cover variants are cropped and serve no
    // other), and each is turned upright, watermarked and encoded on its own task while
    // the next one is resized.
    rayon::scope(|scope| {
        let mut frames: Vec<Arc<Pixels>> = vec![Arc::new(pixels)];
        for v in &plan.variants {
            let (sw, sh) = v.stored_size(orientation);
            let (stored_w, stored_h) = orientation.upright_size(width, height);
            let needed_w = f64::from(stored_w) * v.scale.min(1.0) - 0.5;
            let needed_h = f64::from(stored_h) * v.scale.min(1.0) - 0.5;
            let from = frames
                .iter()
                .rev()
                .find(|f| {
                    let (w, h) = f.size();
                    f64::from(w) >= needed_w && f64::from(h) >= needed_h
                })
                .unwrap_or(&frames[0])
                .clone();
            // Already the right size: used as it is (planes only when they are exactly
            // what the encoder takes).
            let ready = from.size() == (sw, sh)
                && v.spec.fit == Fit::Inside
                && match &*from {
                    Pixels::Rgb(_) => true,
                    Pixels::Planes(p) => {
                        p.chroma_step == (2, 2) && (p.y.width, p.y.height) == (sw, sh)
                    }
                };
            let out = if ready {
                from
            } else {
                match clock.time(Stage::Resize, || {
                    resize::resize_pixels(&from, sw, sh, v.spec.fit)
                }) {
                    Ok(out) => Arc::new(out),
                    Err(e) => return fail(e),
                }
            };
            if v.spec.fit == Fit::Inside {
                frames.push(out.clone());
            }
            let (index, spec) = (v.index, v.spec);
            let (clock, finished, fail) = (&clock, &finished, &fail);
            scope.spawn(move |_| {
                match finish_variant(&out, spec, orientation, watermark, background, clock) {
                    Ok(variant) => {
                        if let Ok(mut list) = finished.lock() {
                            list.push((index, variant));
                        }
                    }
                    Err(e) => fail(e),
                }
            });
        }
        // The analysis image comes from the smallest full frame that still has detail.
        let analysis = frames
            .iter()
            .rev()
            .find(|f| {
                let (w, h) = f.size();
                w >= 2 * fingerprint::ANALYSIS_SIDE && h >= 2 * fingerprint::ANALYSIS_SIDE
            })
            .unwrap_or(&frames[0]);
        fingerprints = Some(clock.time(Stage::Metadata, || {
            fingerprint::analysis_image(analysis, orientation)
                .and_then(|small| fingerprint::fingerprints(&small))
        }));
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    let fingerprints = fingerprints
        .unwrap_or_else(|| Err(PipelineError::Internal("no fingerprints".to_owned())))?;
    let mut encoded = finished.into_inner().unwrap_or_default();
    encoded.sort_by_key(|(index, _)| *index);
    let timings = clock.finish();

    Ok(Rendered {
        metadata: Metadata {
            format: probe.format,
            width,
            height,
            orientation: applied,
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

/// Turns one resized variant upright, watermarks it if its spec asks, and encodes it.
fn finish_variant(
    resized: &Pixels,
    spec: &VariantSpec,
    orientation: Orientation,
    watermark: Option<&Watermark>,
    background: [u8; 3],
    clock: &timing::Clock,
) -> Result<RenderedVariant, PipelineError> {
    let upright = clock.time(Stage::Orient, || {
        orient::orient_pixels(resized, orientation)
    });
    let marked;
    let pixels: &Pixels = match (spec.watermark, watermark, upright.as_ref()) {
        (true, Some(wm), Pixels::Rgb(raster)) => {
            let mut copy = raster.clone();
            clock.time(Stage::Watermark, || wm.apply(&mut copy))?;
            marked = Pixels::Rgb(copy);
            &marked
        }
        _ => upright.as_ref(),
    };
    let bytes = clock
        .time(Stage::Encode, || {
            encode::encode_pixels(pixels, spec.format, spec.quality, background)
        })
        .map_err(|detail| PipelineError::Encode {
            variant: spec.name.clone(),
            format: spec.format.name(),
            detail,
        })?;
    let (width, height) = pixels.size();
    Ok(RenderedVariant {
        name: spec.name.clone(),
        format: spec.format,
        width,
        height,
        watermarked: spec.watermark && watermark.is_some(),
        bytes,
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

//! The render plan, from the header alone: each variant's size and its scale relative to
//! the source, the order they are made in (largest first, so that each comes from the
//! smallest image already made that is large enough), the smallest size the source may
//! be decoded at, and an upper bound of the memory a render takes. Computes only; it
//! decodes nothing and allocates nothing proportional to the image.

use super::decode;
use super::fingerprint;
use super::orient::Orientation;
use super::probe::{Probe, SourceFormat};
use super::recipe::{OutputFormat, Recipe, VariantSpec};
use super::resize;

/// One variant's place in the render order.
#[derive(Debug, Clone)]
pub struct VariantPlan<'r> {
    /// Position in the recipe.
    pub index: usize,
    pub spec: &'r VariantSpec,
    /// Output width and height, upright.
    pub width: u32,
    pub height: u32,
    /// Scale relative to the full-resolution upright source.
    pub scale: f64,
}

impl VariantPlan<'_> {
    /// Output size in the source's stored orientation (what is resized before turning).
    pub fn stored_size(&self, orientation: Orientation) -> (u32, u32) {
        orientation.upright_size(self.width, self.height)
    }
}

#[derive(Debug, Clone)]
pub struct RenderPlan<'r> {
    /// Largest scale first.
    pub variants: Vec<VariantPlan<'r>>,
    /// Source size after orientation.
    pub upright: (u32, u32),
    /// The size, in stored orientation, the source is decoded at: the smallest JPEG
    /// n/8 scale that still serves every variant and the analysis image; the full size
    /// for other formats.
    pub decoded: (u32, u32),
    /// The smallest stored size that serves every variant.
    pub min_stored: (u32, u32),
}

pub fn plan<'r>(probe: &Probe, recipe: &'r Recipe, orientation: Orientation) -> RenderPlan<'r> {
    let (width, height) = orientation.upright_size(probe.width, probe.height);
    let mut variants: Vec<VariantPlan> = recipe
        .variants
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let (w, h) = resize::output_size(width, height, spec.fit, spec.width, spec.height);
            VariantPlan {
                index,
                spec,
                width: w,
                height: h,
                scale: resize::scale_of(width, height, spec.fit, spec.width, spec.height),
            }
        })
        .collect();
    variants.sort_by(|a, b| b.scale.total_cmp(&a.scale));
    let max_scale = variants.first().map_or(1.0, |p| p.scale).min(1.0);
    let need = |side: u32| {
        let scaled = (f64::from(side) * max_scale).ceil() as u32;
        scaled.max(fingerprint::ANALYSIS_SIDE.min(side)).min(side)
    };
    let min_stored = if orientation.swaps_axes() {
        (need(height), need(width))
    } else {
        (need(width), need(height))
    };
    let decoded = match probe.format {
        SourceFormat::Jpeg if !probe.lossless => {
            let f = decode::jpeg_scale(probe.width, probe.height, min_stored);
            (
                f.scale(probe.width as usize) as u32,
                f.scale(probe.height as usize) as u32,
            )
        }
        _ => (probe.width, probe.height),
    };
    RenderPlan {
        variants,
        upright: (width, height),
        decoded,
        min_stored,
    }
}

/// A relative estimate of a render's CPU time from the header alone, in nanoseconds of
/// a 2-vCPU Xeon (2026): what `process` orders a batch by, most expensive first, so
/// that the last files to start are the cheap ones. Fitted on the camera set and its
/// progressive copies (within 11% and 20% per file): 26 ns a source byte and 2.4 a
/// pixel for baseline JPEGs (and, for want of data, other formats); 46 and 11 for
/// progressive ones, whose every scan walks every block. File size alone put a 22 MP
/// progressive photo of 1.7 MB, as slow as any, last in its batch.
pub fn estimated_cost(probe: Option<&Probe>, source_bytes: u64) -> u64 {
    let pixels = probe.map_or(0, |p| u64::from(p.width) * u64::from(p.height));
    let (per_byte, per_ten_pixels) = match probe {
        Some(p) if p.progressive => (46, 114),
        _ => (26, 24),
    };
    source_bytes
        .saturating_mul(per_byte)
        .saturating_add(pixels.saturating_mul(per_ten_pixels) / 10)
}

/// Headroom for what no per-pixel term covers: decoder and encoder state, the analysis
/// image, EXIF, allocator slack.
pub const FIXED_BYTES: u64 = 24 << 20;

/// Upper bound of the bytes a render of this plan holds at its peak, besides the source:
/// the decode (with libjpeg's coefficient buffers for progressive files), then for every
/// variant, as if all were alive at once (they are encoded in parallel), the resize's
/// working buffer, the resized image, its turned and watermarked copies, the flattened
/// copy for formats without alpha, the encoder's buffers and the encoded bytes.
pub fn memory_bound(probe: &Probe, plan: &RenderPlan<'_>) -> u64 {
    let decode = probe.decode_memory(plan.decoded, false);
    let (dw, dh) = (u64::from(plan.decoded.0), u64::from(plan.decoded.1));
    let variants: u64 = plan
        .variants
        .iter()
        .map(|v| {
            let (w, h) = (u64::from(v.width), u64::from(v.height));
            let pixels = w * h;
            // A two-pass convolution keeps one pass's output: at most output width by
            // source height (or source width by output height), 4 bytes a pixel; a
            // cover variant resizes a crop, never more than the whole source. Either
            // side may be the turned one.
            let side = w.max(h);
            let working = 4 * (side * dh).max(dw * side);
            let encoder = match v.spec.format {
                OutputFormat::Jpeg => 8,
                OutputFormat::Png => 10,
                OutputFormat::Webp => 12,
                OutputFormat::Avif => 40,
            };
            working + pixels * (4 + 4 + 4 + 3 + encoder)
        })
        .sum();
    decode + variants + FIXED_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32, progressive: bool) -> Probe {
        Probe {
            format: SourceFormat::Jpeg,
            width,
            height,
            frames: 1,
            container_orientation: None,
            progressive,
            lossless: false,
            decode_bytes_per_pixel: 4,
            coefficient_bytes: 0,
        }
    }

    #[test]
    fn a_large_progressive_photo_of_few_bytes_is_not_taken_for_a_cheap_one() {
        // The camera set's Issue_266 made progressive (22 MP in 1.7 MB) against its
        // largest baseline file (12 MP in 4.2 MB), and the same 22 MP as baseline.
        let progressive = estimated_cost(Some(&jpeg(5760, 3840, true)), 1_711_095);
        let baseline = estimated_cost(Some(&jpeg(4032, 3024, false)), 4_167_727);
        let same_baseline = estimated_cost(Some(&jpeg(5760, 3840, false)), 1_711_095);
        assert!(progressive > 2 * baseline, "{progressive} vs {baseline}");
        assert!(progressive > 3 * same_baseline);
        // Without a header, the size decides.
        assert!(estimated_cost(None, 2_000_000) > estimated_cost(None, 1_000_000));
        assert_eq!(estimated_cost(None, 1_000_000), 26_000_000);
    }
}

//! Stage 5: geometry of each variant and SIMD resizing (Lanczos3, alpha-aware) with
//! `fast_image_resize`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::error::PipelineError;
use super::raster::{Layout, Raster};
use super::recipe::Fit;

/// Output size of a variant for an upright source of `width` x `height`.
pub fn output_size(width: u32, height: u32, fit: Fit, box_w: u32, box_h: u32) -> (u32, u32) {
    match fit {
        Fit::Cover => (box_w, box_h),
        Fit::Inside => fit_inside(width, height, box_w, box_h),
    }
}

/// Largest size with the source's aspect ratio inside the box; never larger than the
/// source.
pub fn fit_inside(width: u32, height: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    if width <= box_w && height <= box_h {
        return (width, height);
    }
    let (w, h, bw, bh) = (
        u64::from(width),
        u64::from(height),
        u64::from(box_w),
        u64::from(box_h),
    );
    let rounded = |num: u64, den: u64| ((num + den / 2) / den).max(1) as u32;
    if w * bh >= h * bw {
        (box_w, rounded(h * bw, w).min(box_h))
    } else {
        (rounded(w * bh, h).min(box_w), box_h)
    }
}

/// The scale, relative to the upright source, at which a variant is rendered.
pub fn scale_of(width: u32, height: u32, fit: Fit, box_w: u32, box_h: u32) -> f64 {
    let (sx, sy) = (
        f64::from(box_w) / f64::from(width),
        f64::from(box_h) / f64::from(height),
    );
    match fit {
        Fit::Inside => sx.min(sy).min(1.0),
        Fit::Cover => sx.max(sy),
    }
}

fn pixel_type(layout: Layout) -> PixelType {
    match layout {
        Layout::Rgb => PixelType::U8x3,
        Layout::Rgba => PixelType::U8x4,
    }
}

fn resize_with(
    src: &Raster,
    width: u32,
    height: u32,
    options: &ResizeOptions,
    crops: bool,
) -> Result<Raster, PipelineError> {
    if (src.width, src.height) == (width, height) && !crops {
        return Ok(src.clone());
    }
    let internal = |e: &dyn std::fmt::Display| PipelineError::Internal(format!("resize: {e}"));
    let source = ImageRef::new(src.width, src.height, &src.data, pixel_type(src.layout))
        .map_err(|e| internal(&e))?;
    let mut dst = Image::new(width, height, pixel_type(src.layout));
    Resizer::new()
        .resize(&source, &mut dst, options)
        .map_err(|e| internal(&e))?;
    Ok(Raster::new(width, height, src.layout, dst.into_vec()))
}

fn lanczos() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
}

/// Resizes the whole frame to exactly `width` x `height`.
pub fn resize(src: &Raster, width: u32, height: u32) -> Result<Raster, PipelineError> {
    resize_with(src, width, height, &lanczos(), false)
}

/// Scales to cover `width` x `height` and crops the centre.
pub fn resize_cover(src: &Raster, width: u32, height: u32) -> Result<Raster, PipelineError> {
    let options = lanczos().fit_into_destination(Some((0.5, 0.5)));
    resize_with(src, width, height, &options, true)
}

/// A fast, rough resize for analysis images (hashes, dominant color).
pub fn resize_box(src: &Raster, width: u32, height: u32) -> Result<Raster, PipelineError> {
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    resize_with(src, width, height, &options, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_keeps_aspect_and_never_enlarges() {
        assert_eq!(fit_inside(5760, 3840, 2048, 2048), (2048, 1365));
        assert_eq!(fit_inside(3840, 5760, 2048, 2048), (1365, 2048));
        assert_eq!(fit_inside(800, 600, 2048, 2048), (800, 600));
        assert_eq!(fit_inside(11158, 2156, 1024, 1024), (1024, 198));
        assert_eq!(fit_inside(100_000, 1, 320, 320), (320, 1));
        assert_eq!(fit_inside(3000, 1000, 600, 100), (300, 100));
    }

    #[test]
    fn cover_is_exactly_the_box_and_crops_the_centre() {
        // Left third red, middle green, right third blue: the centre crop is mostly green.
        let mut data = Vec::new();
        for _ in 0..100 {
            for x in 0..300 {
                data.extend(match x / 100 {
                    0 => [255, 0, 0],
                    1 => [0, 255, 0],
                    _ => [0, 0, 255],
                });
            }
        }
        let src = Raster::new(300, 100, Layout::Rgb, data);
        let out = resize_cover(&src, 50, 50).unwrap();
        assert_eq!((out.width, out.height), (50, 50));
        let centre = out.pixel(25, 25);
        assert!(
            centre[1] > 240 && centre[0] < 15 && centre[2] < 15,
            "{centre:?}"
        );
        let edge = out.pixel(0, 25);
        assert!(edge[1] > 200, "crop must not reach the red third: {edge:?}");
    }

    #[test]
    fn resize_of_a_flat_image_stays_flat() {
        let src = Raster::filled(640, 480, Layout::Rgba, &[10, 200, 30, 128]);
        let out = resize(&src, 64, 48).unwrap();
        assert!(
            out.data
                .chunks(4)
                .all(|p| { p[3] == 128 && p[0].abs_diff(10) <= 1 && p[1].abs_diff(200) <= 1 })
        );
    }
}

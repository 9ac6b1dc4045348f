//! Stage 5: geometry of each variant and SIMD resizing (Lanczos3, alpha-aware) with
//! `fast_image_resize`, of RGB(A) rasters or, on the JPEG fast path, of YCbCr planes
//! (each plane on its own, the chroma planes straight to 4:2:0 for the encoder, both
//! passes run as vertical ones with the plane transposed in between).

use std::borrow::Cow;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{Filter, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::error::PipelineError;
use super::planes::{Pixels, Plane, Planes};
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

/// Lanczos3, sinc(x) sinc(x/3) on |x| < 3, with one sine instead of two: with
/// s = sin(pi x/3), sin(pi x) = s (3 - 4 s^2). The same weights as the crate's own
/// Lanczos3 up to rounding. The weights are computed for every plane of every variant;
/// the crate's filter with its two sines took about 2% of a render's CPU (perf).
fn lanczos3(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    if !(-3.0..3.0).contains(&x) {
        return 0.0;
    }
    let s = (std::f64::consts::FRAC_PI_3 * x).sin();
    let s2 = s * s;
    3.0 * s2 * (3.0 - 4.0 * s2) / (std::f64::consts::PI * std::f64::consts::PI * x * x)
}

fn lanczos() -> ResizeOptions {
    // A support of 3 is always valid; the crate's own Lanczos3 is the same filter.
    let filter =
        Filter::new("Lanczos3", lanczos3, 3.0).map_or(FilterType::Lanczos3, FilterType::Custom);
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter))
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

/// Resizes whatever the decode produced (rasters or planes) to fill `width` x `height`
/// as `fit` says.
pub fn resize_pixels(
    src: &Pixels,
    width: u32,
    height: u32,
    fit: Fit,
) -> Result<Pixels, PipelineError> {
    match src {
        Pixels::Rgb(r) => match fit {
            Fit::Inside => resize(r, width, height),
            Fit::Cover => resize_cover(r, width, height),
        }
        .map(Pixels::Rgb),
        Pixels::Planes(p) => resize_planes(p, width, height, fit, lanczos()).map(Pixels::Planes),
    }
}

/// A part of a source, in its pixels (fractional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// The centred part of a `width` x `height` source with the aspect ratio of the box.
pub fn cover_region(width: u32, height: u32, box_w: u32, box_h: u32) -> Region {
    let (w, h) = (f64::from(width), f64::from(height));
    let aspect = f64::from(box_w) / f64::from(box_h);
    if w / h > aspect {
        let cw = h * aspect;
        Region {
            left: (w - cw) / 2.0,
            top: 0.0,
            width: cw,
            height: h,
        }
    } else {
        let ch = w / aspect;
        Region {
            left: 0.0,
            top: (h - ch) / 2.0,
            width: w,
            height: ch,
        }
    }
}

/// Resizes the `region` of a plane to `width` x `height`: the vertical pass, then the
/// horizontal one as a vertical pass of the transposed plane, transposed back.
/// `fast_image_resize` computes one output pixel at a time in its horizontal pass, with
/// a horizontal sum per pixel and the taps beyond a multiple of 8 one by one, but 32
/// pixels of a row at once in the vertical one; the two transposes cost less than the
/// difference (about a third of the time on the large variant, the same pixels to the
/// byte).
fn resize_plane(
    src: &Plane,
    region: Region,
    width: u32,
    height: u32,
    options: &ResizeOptions,
) -> Result<Plane, PipelineError> {
    let mut resizer = Resizer::new();
    let tall = vertical_pass(
        &mut resizer,
        src,
        (region.top, region.height),
        height,
        options,
    )?;
    let unchanged = region.left == 0.0 && region.width == f64::from(src.width);
    if unchanged && width == src.width {
        return Ok(tall.into_owned());
    }
    // Each buffer let go as soon as the next is made: the peak is two of them.
    let turned = tall.transposed();
    drop(tall);
    let across = vertical_pass(
        &mut resizer,
        &turned,
        (region.left, region.width),
        width,
        options,
    )?;
    Ok(match across {
        Cow::Owned(across) => {
            drop(turned);
            across.transposed()
        }
        Cow::Borrowed(same) => same.transposed(),
    })
}

/// Rows `top..top + rows` (fractional) of `src` resized to `height` rows, every column
/// kept; `src` itself when nothing changes.
fn vertical_pass<'p>(
    resizer: &mut Resizer,
    src: &'p Plane,
    (top, rows): (f64, f64),
    height: u32,
    options: &ResizeOptions,
) -> Result<Cow<'p, Plane>, PipelineError> {
    if top == 0.0 && rows == f64::from(src.height) && height == src.height {
        return Ok(Cow::Borrowed(src));
    }
    let internal = |e: &dyn std::fmt::Display| PipelineError::Internal(format!("resize: {e}"));
    let source =
        ImageRef::new(src.width, src.height, &src.data, PixelType::U8).map_err(|e| internal(&e))?;
    let mut dst = Image::new(src.width, height, PixelType::U8);
    let options = options.clone().crop(0.0, top, f64::from(src.width), rows);
    resizer
        .resize(&source, &mut dst, &options)
        .map_err(|e| internal(&e))?;
    Ok(Cow::Owned(Plane::new(src.width, height, dst.into_vec())))
}

/// Resizes YCbCr planes to a `width` x `height` picture with 4:2:0 chroma, the three
/// planes side by side.
pub fn resize_planes(
    src: &Planes,
    width: u32,
    height: u32,
    fit: Fit,
    options: ResizeOptions,
) -> Result<Planes, PipelineError> {
    let luma = match fit {
        Fit::Inside => Region {
            left: 0.0,
            top: 0.0,
            width: f64::from(src.width),
            height: f64::from(src.height),
        },
        Fit::Cover => cover_region(src.width, src.height, width, height),
    };
    let (sx, sy) = (f64::from(src.chroma_step.0), f64::from(src.chroma_step.1));
    let chroma = Region {
        left: luma.left / sx,
        top: luma.top / sy,
        width: luma.width / sx,
        height: luma.height / sy,
    };
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let (y, (cb, cr)) = rayon::join(
        || resize_plane(&src.y, luma, width, height, &options),
        || {
            rayon::join(
                || resize_plane(&src.cb, chroma, cw, ch, &options),
                || resize_plane(&src.cr, chroma, cw, ch, &options),
            )
        },
    );
    Ok(Planes {
        width,
        height,
        y: y?,
        cb: cb?,
        cr: cr?,
        chroma_step: (2, 2),
    })
}

/// Planes brought to `width` x `height` with full-resolution chroma (4:4:4), with a
/// box filter: the small analysis image of the fingerprints.
pub fn planes_to_444(src: &Planes, width: u32, height: u32) -> Result<Planes, PipelineError> {
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    let (w, h) = (f64::from(src.width), f64::from(src.height));
    let (sx, sy) = (f64::from(src.chroma_step.0), f64::from(src.chroma_step.1));
    let whole = |width: f64, height: f64| Region {
        left: 0.0,
        top: 0.0,
        width,
        height,
    };
    let plane = |p: &Plane, r: Region| resize_plane(p, r, width, height, &options);
    Ok(Planes {
        width,
        height,
        y: plane(&src.y, whole(w, h))?,
        cb: plane(&src.cb, whole(w / sx, h / sy))?,
        cr: plane(&src.cr, whole(w / sx, h / sy))?,
        chroma_step: (1, 1),
    })
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
    fn planes_are_cropped_like_rasters() {
        // The centre crop of planes picks the same part as that of a raster.
        assert_eq!(
            cover_region(300, 100, 50, 50),
            Region {
                left: 100.0,
                top: 0.0,
                width: 100.0,
                height: 100.0
            }
        );
        let stripes = |w: u32, h: u32| {
            let data = (0..h)
                .flat_map(|_| (0..w).map(move |x| if x * 3 / w == 1 { 200 } else { 20 }))
                .collect();
            Plane::new(w, h, data)
        };
        let planes = Planes {
            width: 300,
            height: 100,
            y: stripes(300, 100),
            cb: stripes(150, 50),
            cr: Plane::new(150, 50, vec![128; 150 * 50]),
            chroma_step: (2, 2),
        };
        let out = resize_planes(&planes, 50, 50, Fit::Cover, lanczos()).unwrap();
        assert_eq!((out.y.width, out.y.height), (50, 50));
        assert_eq!((out.cb.width, out.cb.height), (25, 25));
        // Inside the crop, away from its edges (where the filter reaches past it).
        let inner = |p: &Plane, from: u32, to: u32| {
            (0..p.height).all(|y| (from..to).all(|x| p.data[(y * p.width + x) as usize] > 190))
        };
        assert!(
            inner(&out.y, 5, 45),
            "only the middle third: {:?}",
            &out.y.data[..50]
        );
        assert!(
            inner(&out.cb, 3, 22),
            "chroma cropped alike: {:?}",
            &out.cb.data[..25]
        );
        let odd = resize_planes(&planes, 51, 17, Fit::Inside, lanczos()).unwrap();
        assert_eq!((odd.cb.width, odd.cb.height), (26, 9));
    }

    #[test]
    fn plane_resizing_through_transposes_gives_the_crates_pixels() {
        let (w, h) = (301u32, 203u32);
        let data: Vec<u8> = (0..w * h)
            .map(|i| ((i % w) * 5 + (i / w) * 3 + (i % 7) * 20) as u8)
            .collect();
        let src = Plane::new(w, h, data);
        let whole = Region {
            left: 0.0,
            top: 0.0,
            width: f64::from(w),
            height: f64::from(h),
        };
        for (region, ow, oh) in [
            (whole, 150, 101),
            (whole, 301, 77),
            (whole, 97, 203),
            (whole, 301, 203),
            (cover_region(w, h, 64, 64), 64, 64),
            (cover_region(w, h, 40, 90), 40, 90),
        ] {
            let ours = resize_plane(&src, region, ow, oh, &lanczos()).unwrap();
            let source = ImageRef::new(w, h, &src.data, PixelType::U8).unwrap();
            let mut theirs = Image::new(ow, oh, PixelType::U8);
            let options = lanczos().crop(region.left, region.top, region.width, region.height);
            Resizer::new()
                .resize(&source, &mut theirs, &options)
                .unwrap();
            assert_eq!((ours.width, ours.height), (ow, oh));
            assert_eq!(ours.data, theirs.into_vec(), "{region:?} to {ow}x{oh}");
        }
    }

    #[test]
    fn one_sine_lanczos3_is_the_two_sine_formula() {
        let sinc = |x: f64| {
            let x = std::f64::consts::PI * x;
            x.sin() / x
        };
        for i in -3100..=3100 {
            let x = f64::from(i) / 1000.0 + 1e-4;
            let want = if x.abs() < 3.0 {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            };
            assert!((lanczos3(x) - want).abs() < 1e-12, "{x}: {}", lanczos3(x));
        }
        assert_eq!(lanczos3(0.0), 1.0);
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

//! Fingerprints of the picture for the record, computed from a small analysis image
//! made from the smallest rendition that still has the detail (never from the full
//! decode): a 64-bit perceptual hash (DCT), a BlurHash placeholder (the reference
//! algorithm, checked against vectors worked out from it) and the dominant color.

use std::f64::consts::PI;

use super::error::PipelineError;
use super::orient::{self, Orientation};
use super::planes::Pixels;
use super::raster::{Layout, Raster};
use super::resize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    /// 64-bit DCT perceptual hash as 16 hex digits; similar pictures differ in few bits.
    pub perceptual_hash: String,
    pub blur_hash: String,
    /// `#rrggbb`.
    pub dominant_color: String,
}

/// Side of the analysis image the fingerprints are computed from.
pub const ANALYSIS_SIDE: u32 = 64;

/// Largest side of the analysis image made by [`analysis_image`].
const ANALYSIS_MAX: u32 = 256;

/// The small upright RGB(A) image the fingerprints are computed from, made from a full
/// frame in stored orientation.
pub fn analysis_image(frame: &Pixels, orientation: Orientation) -> Result<Raster, PipelineError> {
    let (w, h) = frame.size();
    let (aw, ah) = resize::fit_inside(w, h, ANALYSIS_MAX, ANALYSIS_MAX);
    let small = match frame {
        Pixels::Rgb(r) => resize::resize_box(r, aw, ah)?,
        Pixels::Planes(p) => resize::planes_to_444(p, aw, ah)?.to_rgb_444(),
    };
    Ok(orient::orient(small, orientation))
}

pub fn fingerprints(upright: &Raster) -> Result<Fingerprints, PipelineError> {
    // Transparent areas count as white, as on a web page.
    let small = resize::resize_box(upright, ANALYSIS_SIDE, ANALYSIS_SIDE)?;
    let opaque = small.flatten([255, 255, 255]);
    let (bw, bh) = resize::fit_inside(upright.width, upright.height, 32, 32);
    let blur_source = resize::resize_box(upright, bw, bh)?.flatten([255, 255, 255]);
    Ok(Fingerprints {
        perceptual_hash: perceptual_hash(&opaque)?,
        blur_hash: blur_hash(&blur_source),
        dominant_color: dominant_color(&small),
    })
}

/// DCT hash: 32x32 luma, the 8x8 lowest frequencies but the DC row and column,
/// each bit set when its coefficient is above the median.
pub fn perceptual_hash(rgb: &Raster) -> Result<String, PipelineError> {
    const N: usize = 32;
    let small = resize::resize(rgb, N as u32, N as u32)?;
    let luma: Vec<f64> = small
        .data
        .chunks_exact(3)
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let cos: Vec<Vec<f64>> = (0..=8)
        .map(|u| {
            (0..N)
                .map(|x| (f64::from(2 * x as u32 + 1) * f64::from(u) * PI / (2 * N) as f64).cos())
                .collect()
        })
        .collect();
    let mut coefficients = Vec::with_capacity(64);
    for v in 1..=8 {
        for u in 1..=8 {
            let mut sum = 0.0;
            for y in 0..N {
                let row = &luma[y * N..(y + 1) * N];
                let inner: f64 = row.iter().zip(&cos[u]).map(|(l, c)| l * c).sum();
                sum += inner * cos[v][y];
            }
            coefficients.push(sum);
        }
    }
    let mut sorted = coefficients.clone();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    let bits = coefficients
        .iter()
        .fold(0u64, |acc, c| (acc << 1) | u64::from(*c > median));
    Ok(format!("{bits:016x}"))
}

const BASE83: &[u8] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

fn base83(value: u64, digits: u32, out: &mut String) {
    for i in (0..digits).rev() {
        let d = (value / 83u64.pow(i)) % 83;
        out.push(BASE83[d as usize] as char);
    }
}

fn srgb_to_linear(v: u8) -> f64 {
    let v = f64::from(v) / 255.0;
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(v: f64) -> u64 {
    let v = v.clamp(0.0, 1.0);
    let s = if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5) as u64
}

/// BlurHash with 4x3 components (3x4 for portrait pictures).
pub fn blur_hash(rgb: &Raster) -> String {
    let (nx, ny) = if rgb.height > rgb.width {
        (3usize, 4usize)
    } else {
        (4, 3)
    };
    let (w, h) = (rgb.width as usize, rgb.height as usize);
    let linear: Vec<[f64; 3]> = rgb
        .data
        .chunks_exact(3)
        .map(|p| {
            [
                srgb_to_linear(p[0]),
                srgb_to_linear(p[1]),
                srgb_to_linear(p[2]),
            ]
        })
        .collect();
    let mut factors = Vec::with_capacity(nx * ny);
    for j in 0..ny {
        for i in 0..nx {
            let norm = if i == 0 && j == 0 { 1.0 } else { 2.0 };
            let mut f = [0.0f64; 3];
            for y in 0..h {
                let by = (PI * j as f64 * y as f64 / h as f64).cos();
                for x in 0..w {
                    let basis = by * (PI * i as f64 * x as f64 / w as f64).cos();
                    let p = linear[y * w + x];
                    for c in 0..3 {
                        f[c] += basis * p[c];
                    }
                }
            }
            let scale = norm / (w * h) as f64;
            factors.push(f.map(|v| v * scale));
        }
    }
    let mut out = String::new();
    base83(((nx - 1) + (ny - 1) * 9) as u64, 1, &mut out);
    let ac = &factors[1..];
    let max = ac
        .iter()
        .flat_map(|f| f.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let (quantised_max, max_value) = if ac.is_empty() || max == 0.0 {
        (0u64, 1.0)
    } else {
        let q = (max * 166.0 - 0.5).floor().clamp(0.0, 82.0) as u64;
        (q, (q as f64 + 1.0) / 166.0)
    };
    base83(quantised_max, 1, &mut out);
    let dc = factors[0];
    base83(
        (linear_to_srgb(dc[0]) << 16) + (linear_to_srgb(dc[1]) << 8) + linear_to_srgb(dc[2]),
        4,
        &mut out,
    );
    for f in ac {
        let q = |v: f64| {
            let s = (v / max_value).abs().sqrt().copysign(v);
            (s * 9.0 + 9.5).floor().clamp(0.0, 18.0) as u64
        };
        base83(q(f[0]) * 19 * 19 + q(f[1]) * 19 + q(f[2]), 2, &mut out);
    }
    out
}

/// The most common color, at 4 bits a channel, averaged over its pixels;
/// transparent pixels do not count.
pub fn dominant_color(raster: &Raster) -> String {
    let c = raster.layout.channels();
    let mut counts = vec![(0u32, [0u64; 3]); 4096];
    for p in raster.data.chunks_exact(c) {
        if raster.layout == Layout::Rgba && p[3] < 128 {
            continue;
        }
        let key =
            (usize::from(p[0] >> 4) << 8) | (usize::from(p[1] >> 4) << 4) | usize::from(p[2] >> 4);
        let bin = &mut counts[key];
        bin.0 += 1;
        for (sum, v) in bin.1.iter_mut().zip(p) {
            *sum += u64::from(*v);
        }
    }
    let (n, sums) = counts
        .iter()
        .max_by_key(|(n, _)| *n)
        .copied()
        .unwrap_or((0, [0; 3]));
    if n == 0 {
        return "#ffffff".to_owned();
    }
    let avg = sums.map(|s| (s + u64::from(n) / 2) / u64::from(n));
    format!("#{:02x}{:02x}{:02x}", avg[0], avg[1], avg[2])
}

/// Number of differing bits between two perceptual hashes.
pub fn hamming(a: &str, b: &str) -> Option<u32> {
    let a = u64::from_str_radix(a, 16).ok()?;
    let b = u64::from_str_radix(b, 16).ok()?;
    Some((a ^ b).count_ones())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth, asymmetric picture: waves of frequency `fx`, `fy` over a ramp.
    fn scene(w: u32, h: u32, fx: f64, fy: f64) -> Raster {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (f64::from(x) / f64::from(w), f64::from(y) / f64::from(h));
                let l = 0.5 + 0.3 * (fx * u * 6.0 + 1.0).sin() * (fy * v * 6.0).cos() + 0.2 * u * u
                    - 0.1 * v;
                let v = (l.clamp(0.0, 1.0) * 255.0) as u8;
                data.extend([v, v / 2, 255 - v]);
            }
        }
        Raster::new(w, h, Layout::Rgb, data)
    }

    #[test]
    fn perceptual_hash_is_stable_under_resizing_and_differs_between_pictures() {
        let a = fingerprints(&scene(400, 300, 1.0, 0.7))
            .unwrap()
            .perceptual_hash;
        let a_small = fingerprints(&resize::resize(&scene(400, 300, 1.0, 0.7), 200, 150).unwrap())
            .unwrap()
            .perceptual_hash;
        let b = fingerprints(&scene(400, 300, 0.4, 1.9))
            .unwrap()
            .perceptual_hash;
        assert_eq!(a.len(), 16);
        assert!(hamming(&a, &a_small).unwrap() <= 10, "{a} vs {a_small}");
        assert!(hamming(&a, &b).unwrap() >= 20, "{a} vs {b}");
    }

    /// Reference vectors worked out by hand from the reference algorithm (woltapp's
    /// C and TypeScript encoders: basis cos(pi*i*x/w)*cos(pi*j*y/h), normalisation 1 for
    /// DC and 2 for AC, linear to sRGB truncated after adding 0.5, maximum quantised as
    /// floor(max*166 - 0.5), AC as floor(sqrt(v/max)*9 + 9.5)).
    ///
    /// Flat red, 32x24, 4x3 components: DC is 0xff0000 ("TI:j"). The cosine sums of a
    /// flat picture are not zero for odd frequencies (sum of cos(pi*i*x/w) over x is 1),
    /// so AC(1,0) = AC(3,0) = 2/32, AC(0,1) = 2/24, AC(1,1) = AC(3,1) = 2/768 (red only),
    /// the others 0. Maximum 2/24 quantises to 13 ("D", maximum value 14/166); the
    /// components encode as "]9" (17,9,9), "fQ" (9,9,9), "|c" (18,9,9) and "o1" (11,9,9).
    /// Size flag: 4x3 is 3 + 2*9 = 21 = "L", 3x4 is 2 + 3*9 = 29 = "T".
    #[test]
    fn blur_hash_matches_reference_vectors() {
        let red = Raster::filled(32, 24, Layout::Rgb, &[255, 0, 0]);
        assert_eq!(blur_hash(&red), "LDTI:j]9fQ]9|co1fQo1fQfQfQfQ");
        let black_portrait = Raster::filled(24, 32, Layout::Rgb, &[0, 0, 0]);
        assert_eq!(
            blur_hash(&black_portrait),
            format!("T00000{}", "fQ".repeat(11))
        );
    }

    #[test]
    fn blur_hash_tells_a_picture_from_its_mirror_image() {
        let mut r = Raster::filled(32, 24, Layout::Rgb, &[220, 30, 30]);
        for (i, p) in r.data.chunks_exact_mut(3).enumerate() {
            if i % 32 >= 16 {
                p.copy_from_slice(&[30, 30, 220]);
            }
        }
        let mirrored = orient::orient(r.clone(), Orientation::from_exif(Some(2)));
        let (a, b) = (blur_hash(&r), blur_hash(&mirrored));
        assert_eq!(a[2..6], b[2..6], "same average color");
        assert_ne!(a, b, "the sides differ");
    }

    #[test]
    fn dominant_color_is_the_largest_area() {
        let mut r = Raster::filled(10, 10, Layout::Rgb, &[0, 128, 255]);
        for p in r.data.chunks_exact_mut(3).take(30) {
            p.copy_from_slice(&[250, 10, 10]);
        }
        assert_eq!(dominant_color(&r), "#0080ff");
        let clear = Raster::filled(4, 4, Layout::Rgba, &[1, 2, 3, 0]);
        assert_eq!(dominant_color(&clear), "#ffffff");
    }
}

//! YCbCr planes: the pixel buffer of the JPEG fast path. A JPEG that needs no color
//! conversion is decoded straight to its Y, Cb and Cr planes, resized plane by plane
//! and encoded from planes again, skipping the conversion to RGB and back and the
//! chroma upsampling and downsampling on both sides. Values are JPEG's full-range
//! BT.601 YCbCr. This module holds the buffer and its conversion to RGB for the small
//! analysis image; it does not decide when the fast path applies (the render does).

use super::raster::{Layout, Raster};

/// What the decode hands on: an RGB(A) raster, or, on the JPEG fast path, planes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pixels {
    Rgb(Raster),
    Planes(Planes),
}

impl Pixels {
    /// Picture width and height.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Pixels::Rgb(r) => (r.width, r.height),
            Pixels::Planes(p) => (p.width, p.height),
        }
    }
}

/// One 8-bit plane, rows packed with no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plane({}x{})", self.width, self.height)
    }
}

impl Plane {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Plane {
        debug_assert_eq!(data.len(), width as usize * height as usize);
        Plane {
            width,
            height,
            data,
        }
    }

    /// The plane grown to `width` x `height` by repeating its last column and row
    /// (what an encoder expects around odd-sized images).
    pub fn padded(&self, width: u32, height: u32) -> Plane {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (pw, ph) = (width as usize, height as usize);
        let mut data = Vec::with_capacity(pw * ph);
        for y in 0..ph {
            let row = &self.data[y.min(h - 1) * w..][..w];
            data.extend_from_slice(row);
            let last = row[w - 1];
            data.resize(data.len() + (pw - w), last);
        }
        Plane::new(width, height, data)
    }

    /// The plane mirrored about its main diagonal: column x becomes row x. In 8x8
    /// blocks, each held as eight 64-bit words and transposed with three rounds of
    /// masked swaps, 64 by 64 pixels at a time so that the rows being written stay in
    /// cache; the edges that make no whole block pixel by pixel.
    pub fn transposed(&self) -> Plane {
        const TILE: usize = 64;
        let (w, h) = (self.width as usize, self.height as usize);
        let src = &self.data;
        let mut out = vec![0u8; w * h];
        let (bw, bh) = (w / 8 * 8, h / 8 * 8);
        for ty in (0..bh).step_by(TILE) {
            for tx in (0..bw).step_by(TILE) {
                for bx in (tx..(tx + TILE).min(bw)).step_by(8) {
                    for by in (ty..(ty + TILE).min(bh)).step_by(8) {
                        let mut rows = [0u64; 8];
                        for (i, row) in rows.iter_mut().enumerate() {
                            let at = (by + i) * w + bx;
                            let mut bytes = [0u8; 8];
                            bytes.copy_from_slice(&src[at..at + 8]);
                            *row = u64::from_le_bytes(bytes);
                        }
                        transpose_8x8(&mut rows);
                        for (i, row) in rows.iter().enumerate() {
                            let at = (bx + i) * h + by;
                            out[at..at + 8].copy_from_slice(&row.to_le_bytes());
                        }
                    }
                }
            }
        }
        for y in 0..h {
            let from = if y < bh { bw } else { 0 };
            for x in from..w {
                out[x * h + y] = src[y * w + x];
            }
        }
        Plane::new(self.height, self.width, out)
    }
}

/// Byte j of word i (little-endian) swapped with byte i of word j: pairs of rows swap
/// bytes, then pairs of 2-byte groups two rows apart, then 4-byte groups.
fn transpose_8x8(rows: &mut [u64; 8]) {
    for (shift, mask) in [
        (8, 0x00FF_00FF_00FF_00FFu64),
        (16, 0x0000_FFFF_0000_FFFF),
        (32, 0x0000_0000_FFFF_FFFF),
    ] {
        let step = shift as usize / 8;
        for i in (0..8).filter(|i| i & step == 0) {
            let x = ((rows[i] >> shift) ^ rows[i + step]) & mask;
            rows[i + step] ^= x;
            rows[i] ^= x << shift;
        }
    }
}

/// An image as Y, Cb and Cr planes. The luma plane may be larger than `width` x
/// `height` (decoders pad it to whole chroma samples); `width` and `height` are the
/// picture, and the chroma planes cover it at the ratio of `chroma_step`.
#[derive(Clone, PartialEq, Eq)]
pub struct Planes {
    pub width: u32,
    pub height: u32,
    pub y: Plane,
    pub cb: Plane,
    pub cr: Plane,
    /// Luma pixels per chroma sample, horizontally and vertically (2, 2 for 4:2:0).
    pub chroma_step: (u32, u32),
}

impl std::fmt::Debug for Planes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Planes({}x{}, chroma 1/{}x1/{})",
            self.width, self.height, self.chroma_step.0, self.chroma_step.1
        )
    }
}

impl Planes {
    /// Full-range BT.601 (JPEG) YCbCr to RGB of a picture whose three planes all have
    /// the size `width` x `height` (4:4:4).
    pub fn to_rgb_444(&self) -> Raster {
        debug_assert!(self.chroma_step == (1, 1));
        let (w, h) = (self.width as usize, self.height as usize);
        let mut out = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            let y = &self.y.data[row * self.y.width as usize..][..w];
            let cb = &self.cb.data[row * self.cb.width as usize..][..w];
            let cr = &self.cr.data[row * self.cr.width as usize..][..w];
            for ((&y, &cb), &cr) in y.iter().zip(cb).zip(cr) {
                out.extend(ycbcr_to_rgb(y, cb, cr));
            }
        }
        Raster::new(self.width, self.height, Layout::Rgb, out)
    }
}

/// One pixel of full-range BT.601 YCbCr to RGB, rounded.
pub fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let clamp = |v: f32| (v + 0.5).clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344_136 * cb - 0.714_136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_repeats_the_edge() {
        let p = Plane::new(3, 2, vec![1, 2, 3, 4, 5, 6]);
        let q = p.padded(4, 3);
        assert_eq!(q.data, vec![1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6]);
    }

    #[test]
    fn transposing_moves_every_pixel_across_the_diagonal() {
        // Whole blocks, partial blocks on either side, and planes thinner than a block.
        for (w, h) in [
            (64, 64),
            (130, 67),
            (67, 130),
            (8, 8),
            (9, 17),
            (3, 5),
            (1, 1),
            (200, 3),
        ] {
            let data: Vec<u8> = (0..w * h).map(|i| (i * 7 + i / w) as u8).collect();
            let p = Plane::new(w, h, data);
            let t = p.transposed();
            assert_eq!((t.width, t.height), (h, w));
            for y in 0..h as usize {
                for x in 0..w as usize {
                    assert_eq!(
                        t.data[x * h as usize + y],
                        p.data[y * w as usize + x],
                        "{w}x{h} at {x},{y}"
                    );
                }
            }
            assert_eq!(t.transposed(), p);
        }
    }

    #[test]
    fn known_colors_convert_like_jpeg() {
        // Pure red, green, blue and mid grey as a JPEG encoder stores them (JFIF
        // formulas, rounded) come back within one step.
        let cases = [
            ((76, 85, 255), [255, 0, 0]),
            ((150, 44, 21), [0, 255, 0]),
            ((29, 255, 107), [0, 0, 255]),
            ((128, 128, 128), [128, 128, 128]),
        ];
        for ((y, cb, cr), rgb) in cases {
            let out = ycbcr_to_rgb(y, cb, cr);
            assert!(
                out.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 1),
                "{out:?} vs {rgb:?}"
            );
        }
    }
}

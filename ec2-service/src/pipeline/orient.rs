//! Stage 4: apply the EXIF orientation to the pixels, exactly once. The render turns
//! each variant after it is resized (the smallest image that allows it, since resizing
//! and turning commute), so a 24 MP photo is never turned at full size. After this stage
//! every image is upright and no later stage looks at the orientation tag again.

use std::borrow::Cow;

use rayon::prelude::*;

use super::planes::{Pixels, Plane, Planes};
use super::raster::Raster;

/// EXIF orientation (tag 0x0112). Values outside 1..=8 (0, 9, 65535, ...) are
/// treated as 1: the image is taken as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orientation(u16);

impl Orientation {
    pub const UPRIGHT: Orientation = Orientation(1);

    pub fn from_exif(value: Option<u32>) -> Orientation {
        match value {
            Some(v @ 1..=8) => Orientation(v as u16),
            _ => Orientation::UPRIGHT,
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }

    /// 1, or a value taken as 1: nothing to do.
    pub fn is_upright(self) -> bool {
        !(2..=8).contains(&self.0)
    }

    /// Orientations 5 to 8 swap width and height.
    pub fn swaps_axes(self) -> bool {
        self.0 >= 5
    }

    /// Stored (width, height) to upright (width, height).
    pub fn upright_size(self, width: u32, height: u32) -> (u32, u32) {
        if self.swaps_axes() {
            (height, width)
        } else {
            (width, height)
        }
    }
}

/// Returns the raster turned upright.
pub fn orient(src: Raster, orientation: Orientation) -> Raster {
    if orientation.is_upright() {
        return src;
    }
    turn_raster(&src, orientation)
}

/// Returns the planes turned upright (a chroma plane turns with its picture).
pub fn orient_planes(src: Planes, orientation: Orientation) -> Planes {
    if orientation.is_upright() {
        return src;
    }
    turn_planes(&src, orientation)
}

/// The pixels upright: borrowed as they are when already upright, else a turned copy.
pub fn orient_pixels(src: &Pixels, orientation: Orientation) -> Cow<'_, Pixels> {
    if orientation.is_upright() {
        return Cow::Borrowed(src);
    }
    Cow::Owned(match src {
        Pixels::Rgb(r) => Pixels::Rgb(turn_raster(r, orientation)),
        Pixels::Planes(p) => Pixels::Planes(turn_planes(p, orientation)),
    })
}

fn turn_raster(src: &Raster, orientation: Orientation) -> Raster {
    let c = src.layout.channels();
    let (data, w, h) = turn(&src.data, src.width, src.height, c, orientation.0);
    Raster::new(w, h, src.layout, data)
}

fn turn_planes(src: &Planes, orientation: Orientation) -> Planes {
    let plane = |p: &Plane| {
        let (data, w, h) = turn(&p.data, p.width, p.height, 1, orientation.0);
        Plane::new(w, h, data)
    };
    let (width, height) = orientation.upright_size(src.width, src.height);
    let (sx, sy) = src.chroma_step;
    Planes {
        width,
        height,
        y: plane(&src.y),
        cb: plane(&src.cb),
        cr: plane(&src.cr),
        chroma_step: if orientation.swaps_axes() {
            (sy, sx)
        } else {
            (sx, sy)
        },
    }
}

/// Pixels of `channels` bytes turned by orientation `o` (2 to 8): the data and its new
/// width and height.
fn turn(data: &[u8], width: u32, height: u32, channels: usize, o: u16) -> (Vec<u8>, u32, u32) {
    match (o, channels) {
        (2..=4, _) => (
            flip(data, width as usize, height as usize, channels, o),
            width,
            height,
        ),
        (_, 1) => (transpose_pixels::<1>(data, width, height, o), height, width),
        (_, 3) => (transpose_pixels::<3>(data, width, height, o), height, width),
        _ => (transpose_pixels::<4>(data, width, height, o), height, width),
    }
}

/// 2: mirror left-right; 3: rotate 180; 4: mirror top-bottom.
fn flip(data: &[u8], w: usize, h: usize, c: usize, o: u16) -> Vec<u8> {
    let row = w * c;
    let mut out = vec![0u8; data.len()];
    out.par_chunks_mut(row.max(1))
        .enumerate()
        .for_each(|(y, dst)| {
            let sy = if o == 2 { y } else { h - 1 - y };
            let s = &data[sy * row..(sy + 1) * row];
            if o == 4 {
                dst.copy_from_slice(s);
            } else {
                for (d, p) in dst.chunks_exact_mut(c).zip(s.chunks_exact(c).rev()) {
                    d.copy_from_slice(p);
                }
            }
        });
    out
}

/// 5: transpose; 6: rotate 90 clockwise; 7: transverse; 8: rotate 90 counter-clockwise.
/// Output rows are filled in bands of 16 so that, for each output column, the reads
/// walk 16 neighbouring pixels of one source row.
fn transpose_pixels<const C: usize>(data: &[u8], width: u32, height: u32, o: u16) -> Vec<u8> {
    const BAND: usize = 16;
    let (w, h) = (width as usize, height as usize);
    let (ow, oh) = (h, w);
    let source: &[[u8; C]] = pixels_of(data);
    let mut out = vec![0u8; ow * oh * C];
    out.par_chunks_mut((ow * C * BAND).max(1))
        .enumerate()
        .for_each(|(band, chunk)| {
            let rows: Vec<&mut [u8]> = chunk.chunks_exact_mut(ow * C).collect();
            let mut rows: Vec<&mut [[u8; C]]> = rows.into_iter().map(pixels_of_mut).collect();
            let y0 = band * BAND;
            for x in 0..ow {
                // Source row for this output column, and the column of output row y0.
                let (sy, forward) = match o {
                    5 => (x, true),
                    6 => (h - 1 - x, true),
                    7 => (h - 1 - x, false),
                    _ => (x, false),
                };
                let line = &source[sy * w..(sy + 1) * w];
                for (r, row) in rows.iter_mut().enumerate() {
                    let y = y0 + r;
                    let sx = if forward { y } else { w - 1 - y };
                    row[x] = line[sx];
                }
            }
        });
    out
}

fn pixels_of<const C: usize>(bytes: &[u8]) -> &[[u8; C]] {
    let (pixels, _) = bytes.as_chunks::<C>();
    pixels
}

fn pixels_of_mut<const C: usize>(bytes: &mut [u8]) -> &mut [[u8; C]] {
    let (pixels, _) = bytes.as_chunks_mut::<C>();
    pixels
}

#[cfg(test)]
mod tests {
    use super::super::raster::Layout;
    use super::*;

    /// A 3x2 image whose pixels are numbered 0..6 in the red channel:
    /// ```text
    /// 0 1 2
    /// 3 4 5
    /// ```
    fn numbered() -> Raster {
        let data = (0..6u8).flat_map(|v| [v, 0, 0]).collect();
        Raster::new(3, 2, Layout::Rgb, data)
    }

    fn reds(r: &Raster) -> Vec<u8> {
        r.data.chunks(3).map(|p| p[0]).collect()
    }

    #[test]
    fn all_eight_orientations() {
        let cases: [(u32, (u32, u32), [u8; 6]); 8] = [
            (1, (3, 2), [0, 1, 2, 3, 4, 5]),
            (2, (3, 2), [2, 1, 0, 5, 4, 3]),
            (3, (3, 2), [5, 4, 3, 2, 1, 0]),
            (4, (3, 2), [3, 4, 5, 0, 1, 2]),
            (5, (2, 3), [0, 3, 1, 4, 2, 5]),
            (6, (2, 3), [3, 0, 4, 1, 5, 2]),
            (7, (2, 3), [5, 2, 4, 1, 3, 0]),
            (8, (2, 3), [2, 5, 1, 4, 0, 3]),
        ];
        for (value, size, expected) in cases {
            let o = Orientation::from_exif(Some(value));
            let out = orient(numbered(), o);
            assert_eq!((out.width, out.height), size, "orientation {value}");
            assert_eq!(o.upright_size(3, 2), size);
            assert_eq!(reds(&out), expected, "orientation {value}");
        }
    }

    #[test]
    fn planes_turn_with_their_chroma() {
        let numbered = |w: u32, h: u32| Plane::new(w, h, (0..(w * h) as u8).collect());
        let planes = Planes {
            width: 4,
            height: 2,
            y: numbered(4, 2),
            cb: numbered(2, 1),
            cr: numbered(2, 1),
            chroma_step: (2, 2),
        };
        let turned = orient_planes(planes, Orientation::from_exif(Some(6)));
        assert_eq!((turned.width, turned.height), (2, 4));
        // Rotated clockwise: the first output row is the first column read bottom-up.
        assert_eq!(turned.y.data, vec![4, 0, 5, 1, 6, 2, 7, 3]);
        assert_eq!((turned.cb.width, turned.cb.height), (1, 2));
        assert_eq!(turned.cb.data, vec![0, 1]);
        let mirrored = orient_planes(turned, Orientation::from_exif(Some(2)));
        assert_eq!(mirrored.y.data, vec![0, 4, 1, 5, 2, 6, 3, 7]);
    }

    #[test]
    fn invalid_values_are_upright() {
        for v in [None, Some(0), Some(9), Some(65535)] {
            assert_eq!(Orientation::from_exif(v), Orientation::UPRIGHT);
        }
    }

    #[test]
    fn large_rotations_match_a_naive_rotation() {
        let (w, h) = (37u32, 53u32);
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i % 251) as u8, (i / 251) as u8, 7, 255])
            .collect();
        let src = Raster::new(w, h, Layout::Rgba, data);
        let out = orient(src.clone(), Orientation::from_exif(Some(6)));
        for y in 0..out.height {
            for x in 0..out.width {
                assert_eq!(out.pixel(x, y), src.pixel(y, h - 1 - x));
            }
        }
    }
}

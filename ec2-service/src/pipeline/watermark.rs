//! Stage 6: draw the watermark (an RGBA image or a line of text in the bundled font)
//! onto the variants that ask for it, sized relative to each variant's width.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use serde::{Deserialize, Serialize};

use super::error::PipelineError;
use super::raster::{Layout, Raster};
use super::resize;

/// The font text watermarks are drawn in: DejaVu Sans Bold (Bitstream Vera licence,
/// `ec2-service/assets/DejaVuSans-Bold.LICENSE.txt`).
pub static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold.ttf");

/// Where the mark sits: one of nine anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

impl Anchor {
    /// (horizontal, vertical) position: 0 = start, 1 = middle, 2 = end.
    fn thirds(self) -> (u8, u8) {
        match self {
            Anchor::TopLeft => (0, 0),
            Anchor::Top => (1, 0),
            Anchor::TopRight => (2, 0),
            Anchor::Left => (0, 1),
            Anchor::Center => (1, 1),
            Anchor::Right => (2, 1),
            Anchor::BottomLeft => (0, 2),
            Anchor::Bottom => (1, 2),
            Anchor::BottomRight => (2, 2),
        }
    }
}

/// What is drawn.
#[derive(Debug, Clone)]
pub enum Mark {
    /// An RGBA image (from a PNG with alpha).
    Image(Raster),
    /// A line of text in [`FONT`], in the given color.
    Text { text: String, color: [u8; 3] },
}

/// A watermark ready to apply.
#[derive(Debug, Clone)]
pub struct Watermark {
    pub mark: Mark,
    pub anchor: Anchor,
    /// Gap between the mark and the variant's edges, as a fraction of the variant's width.
    pub margin_fraction: f32,
    /// 0 (invisible) to 1 (opaque).
    pub opacity: f32,
    /// Width of the mark as a fraction of the variant's width.
    pub width_fraction: f32,
}

impl Watermark {
    /// Decodes a watermark image (PNG, ideally with alpha) into an RGBA mark.
    pub fn image_mark(png: &[u8]) -> Result<Mark, String> {
        let image = image::load_from_memory(png)
            .map_err(|e| format!("cannot decode watermark image: {e}"))?;
        let rgba = image.into_rgba8();
        let (w, h) = rgba.dimensions();
        Ok(Mark::Image(Raster::new(
            w,
            h,
            Layout::Rgba,
            rgba.into_raw(),
        )))
    }

    /// Draws the watermark onto `target` in place.
    pub fn apply(&self, target: &mut Raster) -> Result<(), PipelineError> {
        let margin = (target.width as f32 * self.margin_fraction).round() as u32;
        let room_w = target.width.saturating_sub(2 * margin);
        let room_h = target.height.saturating_sub(2 * margin);
        let want_w =
            ((target.width as f32 * self.width_fraction).round() as u32).clamp(1, room_w.max(1));
        let Some(mark) = self.render_mark(want_w, room_h)? else {
            return Ok(());
        };
        let (h3, v3) = self.anchor.thirds();
        let place = |room: u32, size: u32, third: u8| match third {
            0 => margin,
            1 => (room.saturating_sub(size)) / 2,
            _ => room.saturating_sub(size + margin),
        };
        let x0 = place(target.width, mark.width, h3);
        let y0 = place(target.height, mark.height, v3);
        blend(target, &mark, x0, y0, self.opacity.clamp(0.0, 1.0));
        Ok(())
    }

    /// The mark as RGBA at `width` pixels wide (shrunk to fit `max_height`), or None if
    /// it would be empty.
    fn render_mark(&self, width: u32, max_height: u32) -> Result<Option<Raster>, PipelineError> {
        if width == 0 || max_height == 0 {
            return Ok(None);
        }
        match &self.mark {
            Mark::Image(img) => {
                let mut w = width;
                let mut h = ((u64::from(img.height) * u64::from(w)) / u64::from(img.width).max(1))
                    .max(1) as u32;
                if h > max_height {
                    w = ((u64::from(w) * u64::from(max_height)) / u64::from(h)).max(1) as u32;
                    h = max_height;
                }
                resize::resize(img, w, h).map(Some)
            }
            Mark::Text { text, color } => Ok(render_text(text, *color, width, max_height)),
        }
    }
}

/// Lays out `text` so that it is `width` pixels wide (or fits `max_height`) and
/// renders it to an RGBA raster with a soft shadow for legibility on light areas.
fn render_text(text: &str, color: [u8; 3], width: u32, max_height: u32) -> Option<Raster> {
    let font = FontRef::try_from_slice(FONT).ok()?;
    let measure = |px: f32| {
        let scaled = font.as_scaled(PxScale::from(px));
        let mut caret = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            caret += scaled.h_advance(id);
            prev = Some(id);
        }
        (caret, scaled.ascent() - scaled.descent())
    };
    let (w100, h100) = measure(100.0);
    if w100 <= 0.0 {
        return None;
    }
    let mut px = 100.0 * width as f32 / w100;
    if h100 * px / 100.0 > max_height as f32 {
        px = 100.0 * max_height as f32 / h100;
    }
    let scaled = font.as_scaled(PxScale::from(px));
    let (tw, th) = measure(px);
    let shadow = (th / 24.0).round().max(1.0) as u32;
    let (mw, mh) = (tw.ceil() as u32 + shadow, th.ceil() as u32 + shadow);
    if mw == 0 || mh == 0 {
        return None;
    }
    let mut ink = vec![0f32; (mw * mh) as usize];
    let mut caret = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(px, point(caret, scaled.ascent()));
        caret += scaled.h_advance(id);
        prev = Some(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let x = bounds.min.x as i64 + i64::from(gx);
            let y = bounds.min.y as i64 + i64::from(gy);
            if x >= 0 && y >= 0 && (x as u32) < mw && (y as u32) < mh {
                let at = (y as u32 * mw + x as u32) as usize;
                ink[at] = (ink[at] + coverage).min(1.0);
            }
        });
    }
    let mut data = vec![0u8; (mw * mh * 4) as usize];
    for y in 0..mh {
        for x in 0..mw {
            let at = (y * mw + x) as usize;
            let text_a = ink[at];
            let shadow_a = if x >= shadow && y >= shadow {
                ink[((y - shadow) * mw + (x - shadow)) as usize] * 0.5
            } else {
                0.0
            };
            // Text over its shadow (black).
            let a = text_a + shadow_a * (1.0 - text_a);
            if a > 0.0 {
                let px = &mut data[at * 4..at * 4 + 4];
                for (o, c) in px[..3].iter_mut().zip(color) {
                    *o = (f32::from(c) * text_a / a).round() as u8;
                }
                px[3] = (a * 255.0).round() as u8;
            }
        }
    }
    Some(Raster::new(mw, mh, Layout::Rgba, data))
}

/// Composites `mark` (RGBA) over `target` at (x0, y0) with extra `opacity`.
fn blend(target: &mut Raster, mark: &Raster, x0: u32, y0: u32, opacity: f32) {
    let c = target.layout.channels();
    let tw = target.width as usize;
    for my in 0..mark.height {
        let ty = y0 + my;
        if ty >= target.height {
            break;
        }
        for mx in 0..mark.width {
            let tx = x0 + mx;
            if tx >= target.width {
                break;
            }
            let m = mark.pixel(mx, my);
            let a = f32::from(m[3]) / 255.0 * opacity;
            if a <= 0.0 {
                continue;
            }
            let at = (ty as usize * tw + tx as usize) * c;
            let px = &mut target.data[at..at + c];
            let dst_a = if c == 4 {
                f32::from(px[3]) / 255.0
            } else {
                1.0
            };
            let out_a = a + dst_a * (1.0 - a);
            for i in 0..3 {
                let v = (f32::from(m[i]) * a + f32::from(px[i]) * dst_a * (1.0 - a)) / out_a;
                px[i] = v.round().clamp(0.0, 255.0) as u8;
            }
            if c == 4 {
                px[3] = (out_a * 255.0).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red_square() -> Mark {
        Mark::Image(Raster::filled(10, 10, Layout::Rgba, &[255, 0, 0, 255]))
    }

    fn redness(r: &Raster, x: u32, y: u32) -> i32 {
        let p = r.pixel(x, y);
        i32::from(p[0]) - i32::from(p[1])
    }

    #[test]
    fn image_mark_lands_at_the_anchor_with_the_margin() {
        let wm = Watermark {
            mark: red_square(),
            anchor: Anchor::BottomRight,
            margin_fraction: 0.05,
            opacity: 1.0,
            width_fraction: 0.2,
        };
        let mut target = Raster::filled(200, 100, Layout::Rgb, &[255, 255, 255]);
        wm.apply(&mut target).unwrap();
        // Mark is 40x40, margin 10: it covers x 150..190, y 50..90.
        assert!(redness(&target, 170, 70) > 250);
        assert!(redness(&target, 151, 51) > 200);
        assert_eq!(redness(&target, 195, 95), 0);
        assert_eq!(redness(&target, 145, 70), 0);
        assert_eq!(redness(&target, 10, 10), 0);
    }

    #[test]
    fn every_anchor_puts_the_mark_in_its_ninth() {
        let anchors = [
            (Anchor::TopLeft, (0, 0)),
            (Anchor::Top, (1, 0)),
            (Anchor::TopRight, (2, 0)),
            (Anchor::Left, (0, 1)),
            (Anchor::Center, (1, 1)),
            (Anchor::Right, (2, 1)),
            (Anchor::BottomLeft, (0, 2)),
            (Anchor::Bottom, (1, 2)),
            (Anchor::BottomRight, (2, 2)),
        ];
        for (anchor, (cx, cy)) in anchors {
            let wm = Watermark {
                mark: red_square(),
                anchor,
                margin_fraction: 0.02,
                opacity: 1.0,
                width_fraction: 0.2,
            };
            let mut target = Raster::filled(300, 300, Layout::Rgb, &[0, 0, 0]);
            wm.apply(&mut target).unwrap();
            let centre = |t: u32| t * 100 + 50;
            for (tx, ty) in [(0, 0), (1, 1), (2, 2), (cx, cy)] {
                let hit = redness(&target, centre(tx), centre(ty)) > 200;
                assert_eq!(hit, (tx, ty) == (cx, cy), "{anchor:?} at third ({tx},{ty})");
            }
        }
    }

    #[test]
    fn opacity_blends() {
        let wm = Watermark {
            mark: red_square(),
            anchor: Anchor::Center,
            margin_fraction: 0.0,
            opacity: 0.5,
            width_fraction: 0.5,
        };
        let mut target = Raster::filled(100, 100, Layout::Rgb, &[0, 0, 255]);
        wm.apply(&mut target).unwrap();
        let p = target.pixel(50, 50);
        assert!(
            (i32::from(p[0]) - 128).abs() <= 2 && (i32::from(p[2]) - 128).abs() <= 2,
            "{p:?}"
        );
    }

    #[test]
    fn text_mark_draws_ink_in_its_corner_only() {
        let wm = Watermark {
            mark: Mark::Text {
                text: "© Example".into(),
                color: [255, 255, 255],
            },
            anchor: Anchor::TopLeft,
            margin_fraction: 0.02,
            opacity: 1.0,
            width_fraction: 0.4,
        };
        let mut target = Raster::filled(400, 300, Layout::Rgb, &[0, 0, 0]);
        wm.apply(&mut target).unwrap();
        let lit = |x0: u32, x1: u32, y0: u32, y1: u32| {
            let mut n = 0;
            for y in y0..y1 {
                for x in x0..x1 {
                    if target.pixel(x, y)[0] > 128 {
                        n += 1;
                    }
                }
            }
            n
        };
        assert!(lit(8, 170, 8, 60) > 200, "text ink in the top-left");
        assert_eq!(
            lit(180, 400, 0, 300),
            0,
            "nothing past 40% of the width plus margin"
        );
        assert_eq!(lit(0, 400, 80, 300), 0, "nothing below the line");
    }
}

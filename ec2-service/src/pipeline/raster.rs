//! The in-memory pixel buffer every stage after decode works on: 8-bit sRGB, RGB or
//! RGBA, rows packed with no padding.

/// Channel layout of a [`Raster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Rgb,
    Rgba,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::Rgb => 3,
            Layout::Rgba => 4,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Raster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Raster({}x{} {:?})",
            self.width, self.height, self.layout
        )
    }
}

impl Raster {
    pub fn new(width: u32, height: u32, layout: Layout, data: Vec<u8>) -> Self {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * layout.channels()
        );
        Raster {
            width,
            height,
            layout,
            data,
        }
    }

    pub fn filled(width: u32, height: u32, layout: Layout, pixel: &[u8]) -> Self {
        let data = pixel
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * layout.channels())
            .collect();
        Raster::new(width, height, layout, data)
    }

    pub fn row_bytes(&self) -> usize {
        self.width as usize * self.layout.channels()
    }

    pub fn pixel(&self, x: u32, y: u32) -> &[u8] {
        let c = self.layout.channels();
        let at = (y as usize * self.width as usize + x as usize) * c;
        &self.data[at..at + c]
    }

    /// Whether any pixel is not fully opaque.
    pub fn has_transparency(&self) -> bool {
        self.layout == Layout::Rgba && self.data.chunks_exact(4).any(|p| p[3] != 255)
    }

    /// Drops the alpha channel by compositing onto `background`.
    pub fn flatten(&self, background: [u8; 3]) -> Raster {
        match self.layout {
            Layout::Rgb => self.clone(),
            Layout::Rgba => {
                let mut out = Vec::with_capacity(self.width as usize * self.height as usize * 3);
                for p in self.data.chunks_exact(4) {
                    let a = u32::from(p[3]);
                    for (c, bg) in p[..3].iter().zip(background) {
                        let v = (u32::from(*c) * a + u32::from(bg) * (255 - a) + 127) / 255;
                        out.push(v as u8);
                    }
                }
                Raster::new(self.width, self.height, Layout::Rgb, out)
            }
        }
    }

    /// Converts to RGBA (opaque alpha added when needed).
    pub fn to_rgba(&self) -> Raster {
        match self.layout {
            Layout::Rgba => self.clone(),
            Layout::Rgb => {
                let mut out = Vec::with_capacity(self.width as usize * self.height as usize * 4);
                for p in self.data.chunks_exact(3) {
                    out.extend_from_slice(&[p[0], p[1], p[2], 255]);
                }
                Raster::new(self.width, self.height, Layout::Rgba, out)
            }
        }
    }
}

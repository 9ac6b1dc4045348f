//! HEIF sources (HEIC, as iPhones write them, and AVIF): what their ISOBMFF boxes say
//! before any pixel is decoded (the primary item, its `ispe` or `grid` size, `clap`,
//! `irot` and `imir`), and the decode of HEIC with `heifer` (pure Rust: grids decoded
//! tile by tile on all cores, 8 to 12 bits, the ICC profile or `nclx` colors converted
//! to sRGB, the container's crop, rotation and mirror applied). The container's own
//! transforms are the orientation of a HEIF file: the EXIF orientation tag inside it is
//! informative only and never applied on top. AV1 pixels are decoded in [`super::av1`].

use heifer::heifer_isobmff;
use heifer::heifer_isobmff::boxes::{ColorInfo, Grid, Property};
use heifer::heifer_isobmff::{HeifFile, ItemId};

use super::error::PipelineError;
use super::probe::SourceFormat;
use super::raster::{Layout, Raster};

/// What the boxes of a HEIF file say about its primary image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeifHeader {
    pub format: SourceFormat,
    /// Width and height as displayed: after the crop and rotation of the container.
    pub width: u64,
    pub height: u64,
    /// Top-level images (bursts and collections hold several; the primary is rendered).
    pub images: u64,
    /// The EXIF orientation equivalent to the container's rotation and mirror (1 to 8).
    pub orientation: u16,
    /// Coded tiles of the primary image (1 unless it is a grid).
    pub tiles: u64,
    /// The `clap` crop, in coded pixels, when it removes anything.
    pub crop: Option<Crop>,
    /// The colors the primary image (or, failing that, its first tile) declares.
    pub color: HeifColor,
}

/// A rectangle of the coded picture, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// `colr` properties: an ICC profile, H.273 code points, either or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeifColor {
    pub icc: Option<Vec<u8>>,
    pub nclx: Option<Nclx>,
}

/// H.273 code points of an `nclx` `colr` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nclx {
    pub primaries: u16,
    pub transfer: u16,
    pub matrix: u16,
}

/// The brands of the `ftyp` box: HEIC, AVIF, or neither.
pub fn sniff_brand(bytes: &[u8]) -> Option<SourceFormat> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let end = size.clamp(16, bytes.len().min(4096));
    let brands: Vec<&[u8]> = std::iter::once(&bytes[8..12])
        .chain(bytes[16..end].chunks_exact(4))
        .collect();
    let has = |names: &[&[u8]]| brands.iter().any(|b| names.contains(b));
    if has(&[b"avif", b"avis"]) {
        Some(SourceFormat::Avif)
    } else if has(&[
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
    ]) {
        Some(SourceFormat::Heic)
    } else {
        None
    }
}

fn container_error(format: SourceFormat, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::corrupt(format, e.to_string())
}

/// Reads the header of a HEIF file: boxes only, no pixel decoded, nothing allocated in
/// proportion to the declared image size.
pub fn probe(bytes: &[u8], sniffed: SourceFormat) -> Result<HeifHeader, PipelineError> {
    let file = HeifFile::parse(bytes).map_err(|e| container_error(sniffed, e))?;
    let primary = file
        .primary_item()
        .map_err(|e| container_error(sniffed, e))?;
    let id = primary.id;
    let (coded, size, tiles) = match &primary.item_type.0 {
        b"grid" => {
            let data = file
                .item_data(id)
                .map_err(|e| container_error(sniffed, e))?;
            let grid = Grid::parse(&data).map_err(|e| container_error(sniffed, e))?;
            let tile_ids = file.referenced_items(id, b"dimg");
            let first = tile_ids
                .first()
                .ok_or_else(|| PipelineError::corrupt(sniffed, "grid without tiles"))?;
            let tile = file.item(*first).map_err(|e| container_error(sniffed, e))?;
            let tiles = u64::from(grid.rows) * u64::from(grid.columns);
            if tile_ids.len() as u64 != tiles {
                return Err(PipelineError::corrupt(
                    sniffed,
                    format!(
                        "grid of {}x{} tiles references {}",
                        grid.columns,
                        grid.rows,
                        tile_ids.len()
                    ),
                ));
            }
            (
                tile.item_type.0,
                (u64::from(grid.output_width), u64::from(grid.output_height)),
                tiles,
            )
        }
        other => {
            let (w, h) = file
                .image_size(id)
                .map_err(|e| container_error(sniffed, e))?
                .ok_or_else(|| PipelineError::corrupt(sniffed, "no ispe (image size) property"))?;
            (*other, (u64::from(w), u64::from(h)), 1)
        }
    };
    let format = match &coded {
        b"hvc1" => SourceFormat::Heic,
        b"av01" => SourceFormat::Avif,
        other => {
            return Err(PipelineError::UnsupportedFormat(format!(
                "HEIF image coded as {:?} (only HEVC `hvc1` and AV1 `av01` are decoded)",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let (mut width, mut height) = size;
    let mut ops = Vec::new();
    let mut crop = None;
    for property in file
        .item_properties(id)
        .map_err(|e| container_error(format, e))?
    {
        match *property {
            Property::CleanAperture {
                width: (wn, wd),
                height: (hn, hd),
                horiz_offset,
                vert_offset,
            } if wd != 0 && hd != 0 => {
                // The crop never grows the image.
                width = width.min((f64::from(wn) / f64::from(wd)).round() as u64);
                height = height.min((f64::from(hn) / f64::from(hd)).round() as u64);
                crop = clean_aperture(size, (width, height), horiz_offset, vert_offset);
            }
            Property::Rotation(q) => {
                if q % 2 == 1 {
                    (width, height) = (height, width);
                }
                ops.push(Transform::RotateCcw(q));
            }
            Property::Mirror(top_bottom) => ops.push(Transform::Mirror(top_bottom)),
            _ => {}
        }
    }
    Ok(HeifHeader {
        format,
        width,
        height,
        images: file.top_level_image_ids().len().max(1) as u64,
        orientation: exif_orientation(&ops),
        tiles,
        crop,
        color: declared_color(&file, id).map_err(|e| container_error(format, e))?,
    })
}

/// Where a `clap` box of `clean` size puts its rectangle in a `coded` picture: centred,
/// then moved by the offsets (fractions of a pixel rounded). `None` when it keeps all.
fn clean_aperture(
    coded: (u64, u64),
    clean: (u64, u64),
    horiz: (i32, u32),
    vert: (i32, u32),
) -> Option<Crop> {
    if clean == coded {
        return None;
    }
    let origin = |full: u64, kept: u64, (n, d): (i32, u32)| {
        let offset = if d == 0 {
            0.0
        } else {
            f64::from(n) / f64::from(d)
        };
        let at = (full - kept) as f64 / 2.0 + offset;
        at.round().clamp(0.0, (full - kept) as f64) as u32
    };
    Some(Crop {
        x: origin(coded.0, clean.0, horiz),
        y: origin(coded.1, clean.1, vert),
        width: clean.0 as u32,
        height: clean.1 as u32,
    })
}

/// The `colr` properties of item `id`, or of its first tile when it declares none.
fn declared_color(file: &HeifFile<'_>, id: ItemId) -> Result<HeifColor, heifer_isobmff::Error> {
    let of = |item: ItemId| -> Result<HeifColor, heifer_isobmff::Error> {
        let mut color = HeifColor::default();
        for property in file.item_properties(item)? {
            match property {
                Property::Color(ColorInfo::Icc(icc)) if !icc.is_empty() => {
                    color.icc = Some(icc.clone());
                }
                Property::Color(ColorInfo::Nclx {
                    primaries,
                    transfer,
                    matrix,
                    ..
                }) => {
                    color.nclx = Some(Nclx {
                        primaries: *primaries,
                        transfer: *transfer,
                        matrix: *matrix,
                    });
                }
                _ => {}
            }
        }
        Ok(color)
    };
    let color = of(id)?;
    if color != HeifColor::default() {
        return Ok(color);
    }
    match file.referenced_items(id, b"dimg").first() {
        Some(tile) => of(*tile),
        None => Ok(color),
    }
}

/// A transformative property of the container.
#[derive(Debug, Clone, Copy)]
enum Transform {
    /// `irot`: anti-clockwise quarter turns.
    RotateCcw(u8),
    /// `imir`: `true` exchanges top and bottom, `false` left and right.
    Mirror(bool),
}

/// The EXIF orientation (1-8) that does what the transforms do, in their order. Each
/// orientation is a pair (turns clockwise, then mirror left-right), composed as
/// elements of the symmetry group of the square.
fn exif_orientation(ops: &[Transform]) -> u16 {
    // (clockwise quarter turns applied first, mirrored left-right afterwards)
    let mut turns = 0u8;
    let mut mirrored = false;
    for op in ops {
        match *op {
            Transform::RotateCcw(q) => {
                // After a mirror, turning anti-clockwise is turning clockwise before it.
                let cw = (4 - q % 4) % 4;
                turns = if mirrored {
                    (turns + 4 - cw) % 4
                } else {
                    (turns + cw) % 4
                };
            }
            Transform::Mirror(top_bottom) => {
                // Top-bottom is a half turn and a left-right mirror.
                if top_bottom {
                    turns = if mirrored {
                        (turns + 4 - 2) % 4
                    } else {
                        (turns + 2) % 4
                    };
                }
                mirrored = !mirrored;
            }
        }
    }
    // EXIF: 1 none, 6 cw, 3 half, 8 ccw; mirrored after them: 2, 5, 4, 7.
    match (mirrored, turns) {
        (false, 0) => 1,
        (false, 1) => 6,
        (false, 2) => 3,
        (false, _) => 8,
        (true, 0) => 2,
        (true, 1) => 5,
        (true, 2) => 4,
        (true, _) => 7,
    }
}

/// The decoded primary image and its ICC profile.
#[derive(Debug)]
pub struct DecodedHeif {
    pub raster: Raster,
    pub icc: Option<Vec<u8>>,
    /// The pixels were converted to sRGB from the ICC profile or `nclx` colors.
    pub converted: bool,
}

/// Decodes a HEIC source whose header passed the limits, upright and in sRGB.
pub fn decode_heic(bytes: &[u8], max_pixels: u64) -> Result<DecodedHeif, PipelineError> {
    let options = heifer::Options {
        // Grid tiles on as many threads as the render pool has.
        max_threads: rayon::current_num_threads(),
        max_pixels,
    };
    let map = |e: heifer::Error| match e {
        heifer::Error::Unsupported(what) => PipelineError::UnsupportedFormat(format!(
            "this HEIC cannot be decoded faithfully ({what}); it is refused rather than \
             rendered with wrong pixels"
        )),
        other => PipelineError::corrupt(SourceFormat::Heic, other.to_string()),
    };
    let image = heifer::decode_srgb_rgba8(bytes, &options).map_err(map)?;
    let icc = heifer::read_metadata(bytes)
        .ok()
        .and_then(|m| m.icc_profile)
        .filter(|p| !p.is_empty());
    let converted = has_color_info(bytes);
    let (w, h) = (image.width, image.height);
    let raster = if image.has_alpha {
        Raster::new(w, h, Layout::Rgba, image.data)
    } else {
        let rgb = image
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Raster::new(w, h, Layout::Rgb, rgb)
    };
    Ok(DecodedHeif {
        raster,
        icc,
        converted,
    })
}

/// Whether the primary item declares its colors (ICC or `nclx`), which heifer then
/// converts to sRGB.
fn has_color_info(bytes: &[u8]) -> bool {
    let Ok(file) = HeifFile::parse(bytes) else {
        return false;
    };
    let declares = |id: ItemId| {
        file.item_properties(id)
            .map(|mut ps| ps.any(|p| matches!(p, Property::Color(_))))
            .unwrap_or(false)
    };
    let id = file.primary_id;
    declares(id)
        || file
            .referenced_items(id, b"dimg")
            .first()
            .is_some_and(|t| declares(*t))
}

#[cfg(test)]
mod tests {
    use super::super::orient::{Orientation, orient};
    use super::*;

    fn numbered() -> Raster {
        Raster::new(
            3,
            2,
            Layout::Rgb,
            (0..6u8).flat_map(|v| [v, 0, 0]).collect(),
        )
    }

    /// Applies the container transforms literally, one after the other.
    fn literally(ops: &[Transform]) -> Raster {
        let mut r = numbered();
        for op in ops {
            r = match *op {
                // One anti-clockwise quarter turn is EXIF 8.
                Transform::RotateCcw(q) => {
                    (0..q).fold(r, |r, _| orient(r, Orientation::from_exif(Some(8))))
                }
                Transform::Mirror(true) => orient(r, Orientation::from_exif(Some(4))),
                Transform::Mirror(false) => orient(r, Orientation::from_exif(Some(2))),
            };
        }
        r
    }

    #[test]
    fn container_transforms_map_to_the_exif_orientation_that_does_the_same() {
        let all = [
            Transform::RotateCcw(0),
            Transform::RotateCcw(1),
            Transform::RotateCcw(2),
            Transform::RotateCcw(3),
            Transform::Mirror(true),
            Transform::Mirror(false),
        ];
        for a in all {
            for b in all {
                let ops = [a, b];
                let exif = exif_orientation(&ops);
                let expected = literally(&ops);
                let got = orient(numbered(), Orientation::from_exif(Some(u32::from(exif))));
                assert_eq!(got, expected, "{ops:?} gave EXIF {exif}");
            }
        }
        assert_eq!(exif_orientation(&[]), 1);
        assert_eq!(exif_orientation(&[Transform::RotateCcw(3)]), 6);
    }

    #[test]
    fn brands_tell_heic_from_avif() {
        let ftyp = |major: &[u8], compatible: &[&[u8]]| {
            let mut b = ((16 + 4 * compatible.len()) as u32).to_be_bytes().to_vec();
            b.extend(b"ftyp");
            b.extend(major);
            b.extend([0, 0, 0, 0]);
            for c in compatible {
                b.extend(*c);
            }
            b
        };
        assert_eq!(
            sniff_brand(&ftyp(b"heic", &[b"mif1"])),
            Some(SourceFormat::Heic)
        );
        assert_eq!(
            sniff_brand(&ftyp(b"mif1", &[b"avif", b"miaf"])),
            Some(SourceFormat::Avif)
        );
        assert_eq!(sniff_brand(&ftyp(b"isom", &[b"mp41"])), None);
    }
}

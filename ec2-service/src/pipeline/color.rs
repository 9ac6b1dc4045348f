//! Stage 3: bring pixels to sRGB. Sources tagged with another RGB profile (Adobe RGB,
//! Display P3, ProPhoto) are converted through the profile, so that they do not come
//! out dull or over-saturated once the profile is gone from the variants; CMYK is
//! converted with its embedded profile, or a plain ink formula when it has none.
//! sRGB-tagged sources (the vast majority) are left alone.

use std::sync::Arc;

use moxcms::{
    CicpColorPrimaries, CicpProfile, ColorProfile, DataColorSpace, Layout as CmsLayout,
    MatrixCoefficients, ProfileText, RenderingIntent, TransferCharacteristics, TransformOptions,
};
use rayon::prelude::*;

use super::raster::{Layout, Raster};

/// What the color stage found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColorReport {
    /// The ICC profile's description, if the source had a readable profile.
    pub icc_description: Option<String>,
    /// The pixels were converted from that profile to sRGB.
    pub converted: bool,
}

/// Reads the description of an ICC profile.
pub fn icc_description(icc: &[u8]) -> Option<String> {
    let profile = ColorProfile::new_from_slice(icc).ok()?;
    describe(&profile)
}

fn describe(profile: &ColorProfile) -> Option<String> {
    let text = match profile.description.as_ref()? {
        ProfileText::PlainString(s) => s.clone(),
        ProfileText::Localizable(list) => {
            let en = list.iter().find(|l| l.language.eq_ignore_ascii_case("en"));
            en.or(list.first())?.value.clone()
        }
        ProfileText::Description(d) => {
            if d.ascii_string.trim().is_empty() {
                d.unicode_string.clone()
            } else {
                d.ascii_string.clone()
            }
        }
    };
    let text = text
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_owned();
    (!text.is_empty()).then_some(text)
}

fn is_srgb(profile: &ColorProfile, description: Option<&str>) -> bool {
    let srgb = ColorProfile::new_srgb();
    let close = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < 0.003 && (a.y - b.y).abs() < 0.003 && (a.z - b.z).abs() < 0.003
    };
    let named = description.is_some_and(|d| d.to_ascii_lowercase().contains("srgb"));
    named
        && close(profile.red_colorant, srgb.red_colorant)
        && close(profile.green_colorant, srgb.green_colorant)
        && close(profile.blue_colorant, srgb.blue_colorant)
}

/// Whether [`to_srgb`] would leave pixels with this profile as they are: no profile,
/// one that cannot be read, one that is not RGB, or sRGB itself.
pub fn is_srgb_or_untagged(icc: Option<&[u8]>) -> bool {
    let Some(profile) = icc.and_then(|p| ColorProfile::new_from_slice(p).ok()) else {
        return true;
    };
    profile.color_space != DataColorSpace::Rgb || is_srgb(&profile, describe(&profile).as_deref())
}

/// Converts an RGB or RGBA raster from its embedded profile to sRGB in place.
/// A profile that cannot be read or applied is ignored (the pixels are taken as sRGB).
pub fn to_srgb(raster: &mut Raster, icc: Option<&[u8]>) -> ColorReport {
    let Some(icc) = icc else {
        return ColorReport::default();
    };
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        return ColorReport::default();
    };
    let icc_description = describe(&profile);
    let mut report = ColorReport {
        icc_description,
        converted: false,
    };
    if profile.color_space != DataColorSpace::Rgb
        || is_srgb(&profile, report.icc_description.as_deref())
    {
        return report;
    }
    let layout = match raster.layout {
        Layout::Rgb => CmsLayout::Rgb,
        Layout::Rgba => CmsLayout::Rgba,
    };
    let Ok(transform) =
        profile.create_transform_8bit(layout, &ColorProfile::new_srgb(), layout, options())
    else {
        return report;
    };
    let row_bytes = raster.row_bytes();
    report.converted = apply_in_place(&mut raster.data, row_bytes, &transform);
    report
}

/// Converts an RGB or RGBA raster described by H.273 code points (an AVIF's `nclx`
/// color property) to sRGB in place. BT.709 primaries (sRGB's) or unspecified ones are
/// left as they are (`Ok(false)`); others (Display P3, BT.2020, ...) go through a
/// profile made from the code points, an unspecified transfer taken as sRGB's. Code
/// points without a chromaticity or a transfer curve are an error, never a guess.
pub fn cicp_to_srgb(raster: &mut Raster, primaries: u16, transfer: u16) -> Result<bool, String> {
    if matches!(primaries, 1 | 2) {
        return Ok(false);
    }
    let unknown = || format!("colour primaries {primaries} with transfer {transfer} (H.273)");
    let color_primaries = u8::try_from(primaries)
        .ok()
        .and_then(|v| CicpColorPrimaries::try_from(v).ok())
        .filter(|p| {
            !matches!(
                p,
                CicpColorPrimaries::Reserved | CicpColorPrimaries::Unspecified
            )
        })
        .ok_or_else(unknown)?;
    let transfer_characteristics = match transfer {
        2 => TransferCharacteristics::Srgb,
        v => u8::try_from(v)
            .ok()
            .and_then(|v| TransferCharacteristics::try_from(v).ok())
            .filter(|t| {
                !matches!(
                    t,
                    TransferCharacteristics::Reserved | TransferCharacteristics::Unspecified
                )
            })
            .ok_or_else(unknown)?,
    };
    let profile = ColorProfile::new_from_cicp(CicpProfile {
        color_primaries,
        transfer_characteristics,
        matrix_coefficients: MatrixCoefficients::Bt709,
        full_range: true,
    });
    if profile.red_trc.is_none() {
        return Err(unknown());
    }
    let layout = match raster.layout {
        Layout::Rgb => CmsLayout::Rgb,
        Layout::Rgba => CmsLayout::Rgba,
    };
    let transform = profile
        .create_transform_8bit(layout, &ColorProfile::new_srgb(), layout, options())
        .map_err(|e| format!("{}: {e:?}", unknown()))?;
    let row_bytes = raster.row_bytes();
    if apply_in_place(&mut raster.data, row_bytes, &transform) {
        Ok(true)
    } else {
        Err(format!("{}: the conversion failed", unknown()))
    }
}

fn options() -> TransformOptions {
    TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    }
}

/// Runs `transform` over the buffer in parallel bands of rows.
fn apply_in_place(
    data: &mut [u8],
    row_bytes: usize,
    transform: &Arc<moxcms::Transform8BitExecutor>,
) -> bool {
    let band = row_bytes * 32;
    data.par_chunks_mut(band.max(1))
        .map(|chunk| {
            let src = chunk.to_vec();
            transform.transform(&src, chunk).is_ok()
        })
        .reduce(|| true, |a, b| a && b)
}

/// Converts CMYK pixels (4 bytes each) to packed RGB. `inverted` is Adobe's convention
/// (255 = no ink). With a CMYK profile the conversion goes through it; without one, or
/// if it cannot be used, a plain ink formula does.
pub fn cmyk_to_rgb(cmyk: &[u8], icc: Option<&[u8]>, inverted: bool) -> Vec<u8> {
    let pixels = cmyk.len() / 4;
    let mut rgb = vec![0u8; pixels * 3];
    let ink: Vec<u8>;
    // ICC CMYK data counts ink: 0 = none, 255 = full.
    let ink_values: &[u8] = if inverted {
        ink = cmyk.iter().map(|v| 255 - v).collect();
        &ink
    } else {
        cmyk
    };
    let profile = icc
        .and_then(|p| ColorProfile::new_from_slice(p).ok())
        .filter(|p| p.color_space == DataColorSpace::Cmyk);
    let transform = profile.and_then(|p| {
        p.create_transform_8bit(
            CmsLayout::Rgba,
            &ColorProfile::new_srgb(),
            CmsLayout::Rgb,
            options(),
        )
        .ok()
    });
    if let Some(t) = transform {
        const BAND: usize = 4096;
        let ok = ink_values
            .par_chunks(BAND * 4)
            .zip(rgb.par_chunks_mut(BAND * 3))
            .all(|(src, dst)| t.transform(src, dst).is_ok());
        if ok {
            return rgb;
        }
    }
    ink_values
        .par_chunks(4 * 1024)
        .zip(rgb.par_chunks_mut(3 * 1024))
        .for_each(|(src, dst)| {
            for (p, out) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                let k = 255 - u32::from(p[3]);
                for (o, c) in out.iter_mut().zip(&p[..3]) {
                    *o = (((255 - u32::from(*c)) * k + 127) / 255) as u8;
                }
            }
        });
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cmyk_formula() {
        // No ink is white, full K is black, full C is cyan.
        let cmyk = [0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0];
        assert_eq!(
            cmyk_to_rgb(&cmyk, None, false),
            [255, 255, 255, 0, 0, 0, 0, 255, 255]
        );
        // Adobe-inverted storage of the same values.
        let inverted: Vec<u8> = cmyk.iter().map(|v| 255 - v).collect();
        assert_eq!(
            cmyk_to_rgb(&inverted, None, true),
            [255, 255, 255, 0, 0, 0, 0, 255, 255]
        );
    }

    #[test]
    fn wide_gamut_red_becomes_less_saturated_in_srgb_terms_only_when_tagged() {
        let p3 = ColorProfile::new_display_p3();
        let icc = p3.encode().expect("encode Display P3");
        let mut r = Raster::new(1, 1, Layout::Rgb, vec![200, 40, 40]);
        let report = to_srgb(&mut r, Some(&icc));
        assert!(report.converted);
        // P3 red is outside sRGB: in sRGB terms the red channel is pushed up and
        // green/blue down (more saturated numbers), never left unchanged.
        assert_ne!(r.data, vec![200, 40, 40]);
        assert!(r.data[0] > 200, "{:?}", r.data);

        // The same red described by code points (Display P3 primaries, sRGB transfer).
        let mut coded = Raster::new(1, 1, Layout::Rgb, vec![200, 40, 40]);
        assert_eq!(cicp_to_srgb(&mut coded, 12, 13), Ok(true));
        let d: Vec<i32> = coded
            .data
            .iter()
            .zip(&r.data)
            .map(|(a, b)| i32::from(*a) - i32::from(*b))
            .collect();
        assert!(
            d.iter().all(|v| v.abs() <= 2),
            "{:?} vs {:?}",
            coded.data,
            r.data
        );
        let mut srgb = Raster::new(1, 1, Layout::Rgb, vec![200, 40, 40]);
        assert_eq!(cicp_to_srgb(&mut srgb, 1, 13), Ok(false));
        assert_eq!(cicp_to_srgb(&mut srgb, 2, 2), Ok(false));
        assert_eq!(srgb.data, vec![200, 40, 40]);
        assert!(cicp_to_srgb(&mut srgb, 42, 13).is_err());
        assert!(cicp_to_srgb(&mut srgb, 12, 99).is_err());

        let mut untouched = Raster::new(1, 1, Layout::Rgb, vec![200, 40, 40]);
        assert_eq!(to_srgb(&mut untouched, None), ColorReport::default());
        assert_eq!(untouched.data, vec![200, 40, 40]);
        assert_eq!(
            to_srgb(&mut untouched, Some(b"not a profile")),
            ColorReport::default()
        );
    }
}

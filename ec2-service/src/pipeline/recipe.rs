//! The recipe: the list of variants rendered from every source, as data from
//! configuration. Adding or changing a size is a config change, not a release.

use serde::{Deserialize, Serialize};

/// How a variant fills its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Scale down to fit inside the box, keeping the aspect ratio; never enlarge.
    Inside,
    /// Scale to cover the box and crop the centre: the result is exactly the box.
    Cover,
}

/// Output encoding of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    Jpeg,
    /// Lossy WebP.
    Webp,
    Png,
    Avif,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Webp => "webp",
            OutputFormat::Png => "png",
            OutputFormat::Avif => "avif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Png => "image/png",
            OutputFormat::Avif => "image/avif",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
            OutputFormat::Png => "png",
            OutputFormat::Avif => "avif",
        }
    }

    /// Whether the encoding keeps an alpha channel.
    pub fn keeps_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }
}

/// One output of the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Name used in the output key (`variants/<source key>/<name>.<ext>`): `[a-z0-9_-]`.
    pub name: String,
    /// Box width in pixels.
    pub width: u32,
    /// Box height in pixels.
    pub height: u32,
    pub fit: Fit,
    pub format: OutputFormat,
    /// Encoder quality, 1 to 100 (ignored for PNG).
    pub quality: u8,
    /// Whether the configured watermark is drawn on this variant.
    #[serde(default)]
    pub watermark: bool,
}

/// The set of variants rendered from every source, with a version that goes into
/// every record so that `reconcile` can find sources rendered by an older recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub version: String,
    /// Color that transparent pixels are flattened onto for formats without alpha
    /// (JPEG), as `#rrggbb`.
    #[serde(default = "default_background")]
    pub background: String,
    pub variants: Vec<VariantSpec>,
}

fn default_background() -> String {
    "#ffffff".to_owned()
}

/// The largest box a variant may ask for, in either dimension.
pub const MAX_VARIANT_SIDE: u32 = 16384;

impl Default for Recipe {
    /// The standard recipe (`shared/bench/recipe.md`): large 2048 inside q85, medium 1024
    /// inside q82, thumb 320x320 cover q80, all JPEG.
    fn default() -> Self {
        let variant = |name: &str, side: u32, fit: Fit, quality: u8| VariantSpec {
            name: name.to_owned(),
            width: side,
            height: side,
            fit,
            format: OutputFormat::Jpeg,
            quality,
            watermark: false,
        };
        Recipe {
            version: "standard-1".to_owned(),
            background: default_background(),
            variants: vec![
                variant("large", 2048, Fit::Inside, 85),
                variant("medium", 1024, Fit::Inside, 82),
                variant("thumb", 320, Fit::Cover, 80),
            ],
        }
    }
}

impl Recipe {
    /// Checks the recipe; the error names the offending key (`recipe.variants[1].quality`).
    pub fn validate(&self) -> Result<(), String> {
        if self.version.trim().is_empty() {
            return Err("recipe.version: must not be empty".to_owned());
        }
        parse_hex_color(&self.background).map_err(|e| format!("recipe.background: {e}"))?;
        if self.variants.is_empty() {
            return Err("recipe.variants: at least one variant is needed".to_owned());
        }
        for (i, v) in self.variants.iter().enumerate() {
            let key = format!("recipe.variants[{i}]");
            let name_ok = !v.name.is_empty()
                && v.name.len() <= 64
                && v.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err(format!(
                    "{key}.name: {:?} must be 1 to 64 characters of [a-z0-9_-]",
                    v.name
                ));
            }
            if self.variants[..i].iter().any(|o| o.name == v.name) {
                return Err(format!("{key}.name: {:?} is used twice", v.name));
            }
            for (side, value) in [("width", v.width), ("height", v.height)] {
                if value == 0 || value > MAX_VARIANT_SIDE {
                    return Err(format!(
                        "{key}.{side}: {value} must be between 1 and {MAX_VARIANT_SIDE}"
                    ));
                }
            }
            if !(1..=100).contains(&v.quality) {
                return Err(format!(
                    "{key}.quality: {} must be between 1 and 100",
                    v.quality
                ));
            }
        }
        Ok(())
    }

    pub fn background_rgb(&self) -> [u8; 3] {
        parse_hex_color(&self.background).unwrap_or([255, 255, 255])
    }
}

/// Parses `#rrggbb` (the `#` is optional).
pub fn parse_hex_color(text: &str) -> Result<[u8; 3], String> {
    let hex = text.strip_prefix('#').unwrap_or(text);
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not a color of the form #rrggbb"));
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
    Ok([channel(0), channel(2), channel(4)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_recipe_is_valid_and_matches_the_benchmark_recipe() {
        let r = Recipe::default();
        r.validate().unwrap();
        let summary: Vec<_> = r
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.width, v.fit, v.quality))
            .collect();
        assert_eq!(
            summary,
            [
                ("large", 2048, Fit::Inside, 85),
                ("medium", 1024, Fit::Inside, 82),
                ("thumb", 320, Fit::Cover, 80)
            ]
        );
    }

    #[test]
    fn validation_names_the_offending_key() {
        let mut r = Recipe::default();
        r.variants[1].quality = 0;
        assert!(
            r.validate()
                .unwrap_err()
                .starts_with("recipe.variants[1].quality")
        );
        let mut r = Recipe::default();
        r.variants[2].name = "large".into();
        assert!(
            r.validate()
                .unwrap_err()
                .starts_with("recipe.variants[2].name")
        );
        let mut r = Recipe::default();
        r.variants[0].name = "../x".into();
        assert!(
            r.validate()
                .unwrap_err()
                .starts_with("recipe.variants[0].name")
        );
        let mut r = Recipe::default();
        r.variants[0].width = 0;
        assert!(
            r.validate()
                .unwrap_err()
                .starts_with("recipe.variants[0].width")
        );
        let r = Recipe {
            background: "white".into(),
            ..Recipe::default()
        };
        assert!(r.validate().unwrap_err().starts_with("recipe.background"));
    }

    #[test]
    fn hex_colors_parse() {
        assert_eq!(parse_hex_color("#ff8000"), Ok([255, 128, 0]));
        assert_eq!(parse_hex_color("0a0B0c"), Ok([10, 11, 12]));
        assert!(parse_hex_color("#fff").is_err());
    }
}

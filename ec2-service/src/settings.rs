//! Configuration: typed defaults, then a TOML file, then `EC2_SERVICE__SECTION__KEY`
//! environment variables, then [`Settings::validate`]. Every key is documented in
//! `ec2-service/config.example.toml`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::recipe::parse_hex_color;
use crate::pipeline::{Anchor, Limits, Mark, Recipe, Watermark};

/// Where `serve` and the operator commands look for the config file by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ec2-service/config.toml";
/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "EC2_SERVICE";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub recipe: Recipe,
    pub limits: Limits,
    pub watermark: WatermarkSettings,
}

/// The `[watermark]` section. Set `text` or `image_path` (not both) to enable it; variants
/// opt in with `watermark = true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatermarkSettings {
    pub text: Option<String>,
    pub image_path: Option<PathBuf>,
    /// Text color, `#rrggbb`.
    pub color: String,
    pub anchor: Anchor,
    pub margin_fraction: f32,
    pub opacity: f32,
    pub width_fraction: f32,
}

impl Default for WatermarkSettings {
    fn default() -> Self {
        WatermarkSettings {
            text: None,
            image_path: None,
            color: "#ffffff".to_owned(),
            anchor: Anchor::BottomRight,
            margin_fraction: 0.02,
            opacity: 0.6,
            width_fraction: 0.25,
        }
    }
}

/// A configuration problem, naming the key (or file) at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the layered configuration. `file` is required to exist when `file_required`;
    /// `env` replaces the process environment when given (tests).
    pub fn load(
        file: Option<&Path>,
        file_required: bool,
        env: Option<HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if file_required && !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(file_required),
            );
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(env);
        let settings: Settings = builder
            .add_source(environment)
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate().map_err(ConfigError)?;
        Ok(settings)
    }

    /// Checks every section; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        self.recipe.validate()?;
        self.limits.validate()?;
        self.watermark.validate()?;
        let unmarked = !self.watermark.is_enabled();
        if let Some(i) = self
            .recipe
            .variants
            .iter()
            .position(|v| v.watermark && unmarked)
        {
            return Err(format!(
                "recipe.variants[{i}].watermark: asks for a watermark but [watermark] sets neither text nor image_path"
            ));
        }
        Ok(())
    }
}

impl WatermarkSettings {
    pub fn is_enabled(&self) -> bool {
        self.text.is_some() || self.image_path.is_some()
    }

    fn validate(&self) -> Result<(), String> {
        if self.text.is_some() && self.image_path.is_some() {
            return Err("watermark: set text or image_path, not both".to_owned());
        }
        if self.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err("watermark.text: must not be empty".to_owned());
        }
        parse_hex_color(&self.color).map_err(|e| format!("watermark.color: {e}"))?;
        let fractions = [
            ("watermark.margin_fraction", self.margin_fraction, 0.0, 0.45),
            ("watermark.opacity", self.opacity, 0.0, 1.0),
            ("watermark.width_fraction", self.width_fraction, 0.01, 1.0),
        ];
        for (key, value, min, max) in fractions {
            if !(min..=max).contains(&value) {
                return Err(format!("{key}: {value} must be between {min} and {max}"));
            }
        }
        Ok(())
    }

    /// Builds the watermark, reading the image file if one is configured.
    pub fn prepare(&self) -> Result<Option<Watermark>, ConfigError> {
        let mark = match (&self.text, &self.image_path) {
            (Some(text), _) => Mark::Text {
                text: text.clone(),
                color: parse_hex_color(&self.color).map_err(ConfigError)?,
            },
            (None, Some(path)) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    ConfigError(format!(
                        "watermark.image_path: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                Watermark::image_mark(&bytes)
                    .map_err(|e| ConfigError(format!("watermark.image_path: {e}")))?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Watermark {
            mark,
            anchor: self.anchor,
            margin_fraction: self.margin_fraction,
            opacity: self.opacity,
            width_fraction: self.width_fraction,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Fit, OutputFormat};

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn file(text: &str) -> tempfile_path::TempToml {
        tempfile_path::TempToml::new(text)
    }

    /// A config file in the system temp dir, removed on drop.
    mod tempfile_path {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct TempToml(pub PathBuf);

        impl TempToml {
            pub fn new(text: &str) -> Self {
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "ec2-service-settings-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, text).unwrap();
                TempToml(path)
            }
        }

        impl Drop for TempToml {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_the_standard_recipe() {
        let s = Settings::load(None, false, env(&[])).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.recipe.variants.len(), 3);
    }

    #[test]
    fn file_then_environment() {
        let f = file(
            r##"
[recipe]
version = "web-2"
[[recipe.variants]]
name = "hero"
width = 1600
height = 900
fit = "cover"
format = "webp"
quality = 70
watermark = true

[limits]
max_pixels = 1000

[watermark]
text = "© Example"
anchor = "top-left"
"##,
        );
        let s = Settings::load(
            Some(&f.0),
            true,
            env(&[("EC2_SERVICE__LIMITS__MAX_PIXELS", "5000")]),
        )
        .unwrap();
        assert_eq!(s.recipe.version, "web-2");
        assert_eq!(
            s.recipe.variants.len(),
            1,
            "a file's variants replace the default list"
        );
        assert_eq!(s.recipe.variants[0].fit, Fit::Cover);
        assert_eq!(s.recipe.variants[0].format, OutputFormat::Webp);
        assert_eq!(s.limits.max_pixels, 5000, "environment wins over the file");
        assert_eq!(s.limits.max_width, Limits::default().max_width);
        assert_eq!(s.watermark.anchor, Anchor::TopLeft);
        assert!(s.watermark.prepare().unwrap().is_some());
    }

    #[test]
    fn errors_name_the_key() {
        let f = file(
            "[recipe]\nversion = \"x\"\n[[recipe.variants]]\nname = \"a\"\nwidth = 10\nheight = 10\nfit = \"inside\"\nformat = \"jpeg\"\nquality = 101\n",
        );
        let e = Settings::load(Some(&f.0), true, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("recipe.variants[0].quality"), "{e}");

        let f = file(
            "[recipe]\nversion = \"x\"\n[[recipe.variants]]\nname = \"a\"\nwidth = 10\nheight = 10\nfit = \"inside\"\nformat = \"jpeg\"\nquality = 80\nwatermark = true\n",
        );
        let e = Settings::load(Some(&f.0), true, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("recipe.variants[0].watermark"), "{e}");

        let e = Settings::load(
            None,
            false,
            env(&[("EC2_SERVICE__WATERMARK__OPACITY", "3")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("watermark.opacity"), "{e}");

        let f = file("[limits]\nmax_pixel = 5\n");
        let e = Settings::load(Some(&f.0), true, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_pixel"), "unknown keys are refused: {e}");

        let e = Settings::load(Some(Path::new("/nonexistent/config.toml")), true, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/config.toml"), "{e}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example must load and equal the built-in defaults.
    #[test]
    fn example_config_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let loaded = Settings::load(Some(&path), true, Some(HashMap::new())).unwrap();
        assert_eq!(loaded, Settings::default());
    }
}

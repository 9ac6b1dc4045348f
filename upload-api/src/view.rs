//! What the API answers about a record: status, dimensions, camera fields, whether GPS was
//! present (never the coordinates), the error code, and each variant with its public URL.
//!
//! Pure: from a DynamoDB item (the daemon's attributes, see the README's "The record") to
//! JSON. Variant keys are read from the record, never derived: a variant's own `Url` when
//! the daemon wrote one, else the configured public base URL followed by its key.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::records::Item;

/// One image, as `GET /images/{key}` and each entry of `GET /images` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageView {
    pub key: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<Camera>,
    /// Whether the source carried a GPS position (the position itself is never shown).
    pub has_gps: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blurhash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dominant_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    pub variants: Vec<VariantView>,
}

/// The camera EXIF fields the record has.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Camera {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_taken: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f_number: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focal_length_mm: Option<f64>,
}

/// A FAILED record's code and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorView {
    pub code: String,
    pub message: String,
}

/// One variant and where the public can fetch it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantView {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Characters a key keeps in a URL path: unreserved ones and `/` (so `+`, `#`, `?`, `%`
/// and spaces are escaped, and CloudFront and S3 read the key back exactly).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `base` followed by `key`, escaped for a URL path.
pub fn public_url(base: &str, key: &str) -> String {
    format!("{base}{}", utf8_percent_encode(key, PATH))
}

fn text(map: &Item, name: &str) -> Option<String> {
    match map.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn number<T: std::str::FromStr>(map: &Item, name: &str) -> Option<T> {
    match map.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn camera(exif: &Item) -> Camera {
    Camera {
        make: text(exif, "Make"),
        model: text(exif, "Model"),
        lens: text(exif, "Lens"),
        date_taken: text(exif, "DateTaken"),
        exposure_time: text(exif, "ExposureTime"),
        f_number: number(exif, "FNumber"),
        iso: number(exif, "Iso"),
        focal_length_mm: number(exif, "FocalLengthMm"),
    }
}

/// The view of `item` (a record or a stub); `None` if it has no `FileName`.
pub fn image(item: &Item, public_base_url: &str) -> Option<ImageView> {
    let key = text(item, "FileName")?;
    let variants = match item.get("Variants") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|v| match v {
                AttributeValue::M(m) => {
                    let key = text(m, "Key")?;
                    Some(VariantView {
                        name: text(m, "Name").unwrap_or_default(),
                        url: text(m, "Url").unwrap_or_else(|| public_url(public_base_url, &key)),
                        width: number(m, "Width"),
                        height: number(m, "Height"),
                        bytes: number(m, "Bytes"),
                        format: text(m, "Format"),
                    })
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let status = text(item, "Status").unwrap_or_else(|| "UNKNOWN".to_owned());
    let error = match (text(item, "ErrorCode"), status.as_str()) {
        (Some(code), "FAILED") => Some(ErrorView {
            code,
            message: text(item, "ErrorMessage").unwrap_or_default(),
        }),
        _ => None,
    };
    Some(ImageView {
        key,
        status,
        name: text(item, "OriginalName"),
        content_type: text(item, "ContentType"),
        uploaded_at: text(item, "UploadedAt"),
        processed_at: text(item, "ProcessedAt"),
        size_bytes: number(item, "SizeBytes"),
        format: text(item, "Format"),
        width: number(item, "Width"),
        height: number(item, "Height"),
        orientation: number(item, "Orientation"),
        camera: match item.get("Exif") {
            Some(AttributeValue::M(exif)) if !exif.is_empty() => Some(camera(exif)),
            _ => None,
        },
        has_gps: matches!(item.get("Gps"), Some(AttributeValue::M(gps)) if !gps.is_empty()),
        blurhash: text(item, "BlurHash"),
        dominant_color: text(item, "DominantColor"),
        error,
        variants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }
    fn m(pairs: &[(&str, AttributeValue)]) -> AttributeValue {
        AttributeValue::M(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn done_record() -> Item {
        HashMap::from([
            ("FileName".into(), s("uploads/u1/abc-harbour.jpg")),
            ("Status".into(), s("DONE")),
            ("Owner".into(), s("u1")),
            ("OriginalName".into(), s("harbour.jpg")),
            ("Width".into(), n("4000")),
            ("Height".into(), n("3000")),
            ("Format".into(), s("jpeg")),
            (
                "Exif".into(),
                m(&[
                    ("Make", s("Canon")),
                    ("Model", s("EOS R5")),
                    ("FNumber", n("2.8")),
                    ("Iso", n("100")),
                ]),
            ),
            (
                "Gps".into(),
                m(&[("Latitude", n("48.8584")), ("Longitude", n("2.2945"))]),
            ),
            ("BlurHash".into(), s("LEHV6nWB2yk8pyo0adR*.7kCMdnj")),
            (
                "Variants".into(),
                AttributeValue::L(vec![
                    m(&[
                        ("Name", s("large")),
                        ("Key", s("variants/uploads/u1/abc-harbour.jpg/r1/large.jpg")),
                        ("Width", n("2048")),
                        ("Height", n("1536")),
                    ]),
                    m(&[
                        ("Name", s("thumb")),
                        ("Key", s("variants/uploads/u1/abc-harbour.jpg/r1/thumb.jpg")),
                        ("Url", s("https://cdn.example.com/t.jpg")),
                    ]),
                ]),
            ),
        ])
    }

    #[test]
    fn shows_facts_and_variant_urls_but_never_the_position() {
        let view = image(&done_record(), "https://d1.cloudfront.net/").unwrap();
        assert_eq!(view.status, "DONE");
        assert_eq!((view.width, view.height), (Some(4000), Some(3000)));
        assert!(view.has_gps);
        let camera = view.camera.clone().unwrap();
        assert_eq!(camera.model.as_deref(), Some("EOS R5"));
        assert_eq!(camera.f_number, Some(2.8));
        // Keys come from the record; a variant's own Url wins over the base URL.
        assert_eq!(
            view.variants[0].url,
            "https://d1.cloudfront.net/variants/uploads/u1/abc-harbour.jpg/r1/large.jpg"
        );
        assert_eq!(view.variants[1].url, "https://cdn.example.com/t.jpg");
        let json = serde_json::to_string(&view).unwrap();
        assert!(
            !json.contains("48.85") && !json.contains("Latitude") && !json.contains("2.2945"),
            "{json}"
        );
    }

    #[test]
    fn failures_and_stubs() {
        let failed = HashMap::from([
            ("FileName".into(), s("uploads/u1/x-notes.jpg")),
            ("Status".into(), s("FAILED")),
            ("ErrorCode".into(), s("unsupported-format")),
            ("ErrorMessage".into(), s("no known image signature")),
        ]);
        let view = image(&failed, "https://d/").unwrap();
        assert_eq!(view.error.unwrap().code, "unsupported-format");
        assert!(!view.has_gps && view.variants.is_empty());
        let stub = HashMap::from([
            ("FileName".into(), s("uploads/u1/y-a.png")),
            ("Status".into(), s("UPLOADING")),
        ]);
        assert_eq!(image(&stub, "https://d/").unwrap().status, "UPLOADING");
    }

    #[test]
    fn urls_escape_what_a_key_may_hold() {
        assert_eq!(
            public_url("https://d/", "variants/uploads/café+menu #2.jpg/large.jpg"),
            "https://d/variants/uploads/caf%C3%A9%2Bmenu%20%232.jpg/large.jpg"
        );
    }
}

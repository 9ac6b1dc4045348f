//! Camera EXIF and GPS for the record, and the orientation tag for the orient stage.
//! Bad EXIF never fails a source: whatever cannot be read is left out.

use std::io::Cursor;

use exif::{In, Tag, Value};
use serde::{Deserialize, Serialize};

use super::probe::SourceFormat;

/// Camera fields of the record. Absent fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    /// When the photo was taken, ISO 8601 (`2016-05-21T14:02:11`, with `+02:00` when the
    /// camera recorded its offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_taken: Option<String>,
    /// Exposure time as photographers write it: `1/250`, `2.5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure_time: Option<String>,
    /// Aperture as an f-number (2.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f_number: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focal_length_mm: Option<f64>,
}

impl Camera {
    pub fn is_empty(&self) -> bool {
        *self == Camera::default()
    }
}

/// Where the photo was taken (WGS 84 degrees, metres above sea level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altitude_m: Option<f64>,
}

/// What EXIF says, read from any container that carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifData {
    /// Raw orientation tag value, if present.
    pub orientation: Option<u32>,
    pub camera: Camera,
    pub gps: Option<Gps>,
}

/// Reads EXIF from a JPEG, PNG, WebP or TIFF source.
pub fn read(bytes: &[u8], format: SourceFormat) -> ExifData {
    if matches!(format, SourceFormat::Gif | SourceFormat::Bmp) {
        return ExifData::default();
    }
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return ExifData::default();
    };
    let field = |tag: Tag| exif.get_field(tag, In::PRIMARY);
    let text = |tag: Tag| field(tag).and_then(|f| ascii(&f.value));
    let rational = |tag: Tag| {
        field(tag)
            .and_then(|f| match &f.value {
                Value::Rational(v) => v.first().map(|r| r.to_f64()),
                Value::SRational(v) => v.first().map(|r| r.to_f64()),
                _ => None,
            })
            .filter(|v| v.is_finite())
    };
    let orientation = field(Tag::Orientation).and_then(|f| f.value.get_uint(0));
    let date_taken = text(Tag::DateTimeOriginal)
        .or_else(|| text(Tag::DateTime))
        .and_then(|d| iso_date(&d, text(Tag::OffsetTimeOriginal).as_deref()));
    let exposure_time = field(Tag::ExposureTime).and_then(|f| match &f.value {
        Value::Rational(v) => v.first().and_then(|r| exposure(r.num, r.denom)),
        _ => None,
    });
    let camera = Camera {
        make: text(Tag::Make),
        model: text(Tag::Model),
        lens: text(Tag::LensModel),
        date_taken,
        exposure_time,
        f_number: rational(Tag::FNumber)
            .filter(|v| *v > 0.0)
            .map(|v| round(v, 1)),
        iso: field(Tag::PhotographicSensitivity)
            .and_then(|f| f.value.get_uint(0))
            .filter(|v| *v > 0),
        focal_length_mm: rational(Tag::FocalLength)
            .filter(|v| *v > 0.0)
            .map(|v| round(v, 1)),
    };
    ExifData {
        orientation,
        camera,
        gps: gps(&exif),
    }
}

fn ascii(value: &Value) -> Option<String> {
    let Value::Ascii(parts) = value else {
        return None;
    };
    let text = parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .find(|s| {
            !s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .is_empty()
        })?;
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim().to_owned();
    (!text.is_empty() && text.len() <= 256).then_some(text)
}

/// `2016:05:21 14:02:11` to `2016-05-21T14:02:11`, with the offset when given.
fn iso_date(text: &str, offset: Option<&str>) -> Option<String> {
    let dt = exif::DateTime::from_ascii(text.as_bytes()).ok()?;
    if dt.year == 0
        || !(1..=12).contains(&dt.month)
        || !(1..=31).contains(&dt.day)
        || dt.hour > 23
        || dt.minute > 59
        || dt.second > 60
    {
        return None;
    }
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    );
    if let Some(off) = offset {
        let b = off.as_bytes();
        if b.len() == 6 && (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
            out.push_str(off);
        }
    }
    Some(out)
}

fn exposure(num: u32, denom: u32) -> Option<String> {
    if num == 0 || denom == 0 {
        return None;
    }
    if num < denom {
        let inverse = f64::from(denom) / f64::from(num);
        if (inverse - inverse.round()).abs() < 0.05 {
            return Some(format!("1/{}", inverse.round()));
        }
        return Some(format!("{num}/{denom}"));
    }
    let seconds = f64::from(num) / f64::from(denom);
    Some(format!("{}", round(seconds, 1)))
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn gps(exif: &exif::Exif) -> Option<Gps> {
    let dms = |tag: Tag| -> Option<f64> {
        let f = exif.get_field(tag, In::PRIMARY)?;
        let Value::Rational(v) = &f.value else {
            return None;
        };
        let parts: Vec<f64> = v.iter().take(3).map(|r| r.to_f64()).collect();
        if parts.is_empty() || parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return None;
        }
        Some(parts[0] + parts.get(1).unwrap_or(&0.0) / 60.0 + parts.get(2).unwrap_or(&0.0) / 3600.0)
    };
    let reference = |tag: Tag| {
        exif.get_field(tag, In::PRIMARY)
            .and_then(|f| ascii(&f.value))
            .and_then(|s| s.chars().next())
    };
    let mut latitude = dms(Tag::GPSLatitude)?;
    let mut longitude = dms(Tag::GPSLongitude)?;
    if reference(Tag::GPSLatitudeRef) == Some('S') {
        latitude = -latitude;
    }
    if reference(Tag::GPSLongitudeRef) == Some('W') {
        longitude = -longitude;
    }
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return None;
    }
    // 0/0 is what many phones write when they had no fix.
    if latitude == 0.0 && longitude == 0.0 {
        return None;
    }
    let altitude_m = exif
        .get_field(Tag::GPSAltitude, In::PRIMARY)
        .and_then(|f| match &f.value {
            Value::Rational(v) => v.first().map(|r| r.to_f64()),
            _ => None,
        })
        .filter(|a| a.is_finite())
        .map(|a| {
            let below = exif
                .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
                == Some(1);
            round(if below { -a } else { a }, 2)
        });
    Some(Gps {
        latitude: round(latitude, 7),
        longitude: round(longitude, 7),
        altitude_m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_written_as_photographers_do() {
        assert_eq!(exposure(1, 250).as_deref(), Some("1/250"));
        assert_eq!(exposure(10, 2500).as_deref(), Some("1/250"));
        assert_eq!(exposure(5, 2).as_deref(), Some("2.5"));
        assert_eq!(exposure(0, 1), None);
        assert_eq!(exposure(1, 0), None);
    }

    #[test]
    fn dates_become_iso_8601() {
        assert_eq!(
            iso_date("2016:05:21 14:02:11", None).as_deref(),
            Some("2016-05-21T14:02:11")
        );
        assert_eq!(
            iso_date("2016:05:21 14:02:11", Some("+02:00")).as_deref(),
            Some("2016-05-21T14:02:11+02:00")
        );
        assert_eq!(iso_date("0000:00:00 00:00:00", None), None);
        assert_eq!(iso_date("garbage", None), None);
    }

    #[test]
    fn no_exif_is_no_fields() {
        assert_eq!(
            read(b"\xFF\xD8\xFF\xD9", SourceFormat::Jpeg),
            ExifData::default()
        );
        assert_eq!(read(b"GIF89a", SourceFormat::Gif), ExifData::default());
    }
}

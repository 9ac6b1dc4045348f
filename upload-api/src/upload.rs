//! `POST /uploads`: what a caller may upload, refused up front with the daemon's own codes
//! when the daemon would refuse it later, and the key the photo will have.
//!
//! Pure: the request is checked and named here; signing is [`crate::presign`], the stub
//! record [`crate::records`].

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::ACCEPTED_TYPES;

/// The body of `POST /uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name on the caller's machine (kept as `OriginalName`; the key gets a safe
    /// version of it).
    pub name: String,
    /// The file's MIME type, as the browser reports it.
    pub content_type: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// Why an upload is refused before it starts. The codes are the daemon's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the file is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("{content_type:?} is not an accepted image type (JPEG, PNG, WebP or HEIC)")]
    Unsupported { content_type: String },
    #[error("the file name is empty or longer than 1024 bytes")]
    BadName,
}

impl Refusal {
    /// The daemon's code for the same refusal (`bad-request` for a missing name, which
    /// the daemon never sees).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "source-too-large",
            Refusal::Empty => "empty-source",
            Refusal::Unsupported { .. } => "unsupported-format",
            Refusal::BadName => "bad-request",
        }
    }
}

/// An upload the API will sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The content type, lower case, without parameters.
    pub content_type: String,
    /// The key's extension for that type (what the stack's notification forwards).
    pub extension: &'static str,
}

/// Checks `request` against the limit and the accepted types.
pub fn check(request: &UploadRequest, max_source_bytes: u64) -> Result<Accepted, Refusal> {
    if request.name.trim().is_empty() || request.name.len() > 1024 {
        return Err(Refusal::BadName);
    }
    let content_type = request
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(&(_, extension)) = ACCEPTED_TYPES.iter().find(|(t, _)| *t == content_type) else {
        return Err(Refusal::Unsupported {
            content_type: request.content_type.clone(),
        });
    };
    if request.size == 0 {
        return Err(Refusal::Empty);
    }
    if request.size > max_source_bytes {
        return Err(Refusal::TooLarge {
            size: request.size,
            max: max_source_bytes,
        });
    }
    Ok(Accepted {
        content_type,
        extension,
    })
}

/// The caller's folder name, from the token's `sub`: the subject itself when it is made of
/// letters, digits, `-` and `_` (Cognito's are UUIDs), else `x.` and a SHA-256 of it (a
/// subject such as `auth0|123` or one with `/` must not shape the key; the `.` cannot occur
/// in a subject used as it is, so the two forms never collide).
pub fn caller_folder(subject: &str) -> String {
    let plain = !subject.is_empty()
        && subject.len() <= 128
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        subject.to_owned()
    } else {
        format!(
            "x.{}",
            &hex::encode(Sha256::digest(subject.as_bytes()))[..40]
        )
    }
}

/// The file name's stem made key-safe: ASCII letters, digits, `.`, `_` and `-`, every other
/// run of characters one `-`, at most 80 bytes, `photo` when nothing is left. The keys the
/// API makes therefore never need URL encoding.
pub fn safe_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    };
    let mut out = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 80 {
            break;
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_owned();
    if out.is_empty() {
        "photo".to_owned()
    } else {
        out
    }
}

/// `<prefix><folder>/<id>-<safe stem><extension>`.
pub fn source_key(prefix: &str, folder: &str, id: &str, name: &str, extension: &str) -> String {
    format!("{prefix}{folder}/{id}-{}{extension}", safe_stem(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, content_type: &str, size: u64) -> UploadRequest {
        UploadRequest {
            name: name.into(),
            content_type: content_type.into(),
            size,
        }
    }

    #[test]
    fn refusals_carry_the_daemons_codes() {
        let max = 200 * 1024 * 1024;
        let refused = |r: UploadRequest| check(&r, max).unwrap_err().code();
        assert_eq!(
            refused(request("big.jpg", "image/jpeg", max + 1)),
            "source-too-large"
        );
        assert_eq!(
            refused(request("empty.jpg", "image/jpeg", 0)),
            "empty-source"
        );
        assert_eq!(
            refused(request("notes.pdf", "application/pdf", 10)),
            "unsupported-format"
        );
        assert_eq!(
            refused(request("page.html", "text/html", 10)),
            "unsupported-format"
        );
        // AVIF and GIF are images, but the daemon refuses them.
        assert_eq!(
            refused(request("IMG_1.AVIF", "image/avif", 10)),
            "unsupported-format"
        );
        assert_eq!(
            refused(request("a.gif", "image/gif", 10)),
            "unsupported-format"
        );
        assert_eq!(refused(request("", "image/jpeg", 10)), "bad-request");
        let ok = check(&request("a.JPG", "Image/JPEG; charset=binary", max), max).unwrap();
        assert_eq!(
            (ok.content_type.as_str(), ok.extension),
            ("image/jpeg", ".jpg")
        );
        assert_eq!(
            check(&request("a", "image/webp", 1), max)
                .unwrap()
                .extension,
            ".webp"
        );
        assert_eq!(
            check(&request("IMG_1.HEIC", "image/heic", 1), max)
                .unwrap()
                .extension,
            ".heic"
        );
    }

    #[test]
    fn keys_are_safe_and_in_the_callers_folder() {
        assert_eq!(
            source_key(
                "uploads/",
                "3f1c-77",
                "abc",
                "Café menu #2 (final).jpeg",
                ".jpg"
            ),
            "uploads/3f1c-77/abc-Caf-menu-2-final.jpg"
        );
        assert_eq!(safe_stem("../../etc/passwd"), "passwd");
        assert_eq!(safe_stem("C:\\photos\\x.png"), "x");
        assert_eq!(safe_stem(".hidden"), "hidden");
        assert_eq!(safe_stem("日本.jpg"), "photo");
        assert_eq!(safe_stem(&"a".repeat(500)).len(), 80);
        assert_eq!(
            caller_folder("0b6e1c2a-5f3d-4c1e-9d0a-123456789abc"),
            "0b6e1c2a-5f3d-4c1e-9d0a-123456789abc"
        );
        let hashed = caller_folder("auth0|123/../other");
        assert!(hashed.starts_with("x.") && hashed.len() == 42, "{hashed}");
        assert_ne!(caller_folder("auth0|123"), caller_folder("auth0|124"));
        assert!(caller_folder("").starts_with("x."));
    }
}

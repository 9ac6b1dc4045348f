//! Request signatures: HMAC-SHA256 over method, path, timestamp and body digest.
//!
//! The signer sends three headers: [`KEY_ID_HEADER`] (which secret), [`TIMESTAMP_HEADER`]
//! (unix seconds, decimal) and [`SIGNATURE_HEADER`] (lowercase hex of the HMAC-SHA256, keyed
//! by the secret, of the [`string_to_sign`]):
//!
//! ```text
//! METHOD \n PATH \n TIMESTAMP \n hex(sha256(body))
//! ```
//!
//! The verifier holds a [`KeySet`] of every active key (several during a rotation), checks
//! the timestamp against its own clock within a skew window, and compares in constant time
//! (through `hmac`'s `verify_slice`). Secrets never appear in `Debug` output or errors.
//!
//! Not covered, on purpose: the query string and other headers. Replays inside the skew
//! window are the verifier's to detect ([`CheckedHeaders::signature`]): the daemon keeps
//! the signatures it has seen within the window.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header naming the key that signed the request.
pub const KEY_ID_HEADER: &str = "x-pipeline-key-id";
/// Header carrying the signing time, unix seconds in decimal.
pub const TIMESTAMP_HEADER: &str = "x-pipeline-timestamp";
/// Header carrying the lowercase hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-pipeline-signature";
/// Default tolerance, in seconds, between the signer's timestamp and the verifier's clock
/// (in either direction).
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;
/// Shortest secret accepted, in bytes (HMAC-SHA256 wants at least its output size).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest key id accepted, in bytes.
pub const MAX_KEY_ID_LEN: usize = 128;

type HmacSha256 = Hmac<Sha256>;

/// A secret and the id under which it is announced in [`KEY_ID_HEADER`].
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

/// Why a [`SigningKey`] or [`KeySet`] could not be built. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key id is empty, too long, or has characters outside `A-Z a-z 0-9 . _ - : /`.
    #[error(
        "signing key id {0:?} is invalid: use 1 to {MAX_KEY_ID_LEN} characters from A-Z a-z 0-9 . _ - : /"
    )]
    InvalidId(String),
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("signing key {id:?} is too short: {len} bytes, at least {MIN_SECRET_LEN} needed")]
    SecretTooShort {
        /// The key's id.
        id: String,
        /// The secret's length in bytes.
        len: usize,
    },
    /// Two keys of one [`KeySet`] have the same id.
    #[error("signing key id {0:?} appears twice")]
    DuplicateId(String),
}

impl SigningKey {
    /// Builds a key, checking the id (see [`KeyError::InvalidId`]) and the secret's length.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let id = id.into();
        let secret = secret.into();
        let id_ok = !id.is_empty()
            && id.len() <= MAX_KEY_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
        if !id_ok {
            return Err(KeyError::InvalidId(id));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort {
                id,
                len: secret.len(),
            });
        }
        Ok(Self { id, secret })
    }

    /// The key's id, as sent in [`KEY_ID_HEADER`].
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The keys a verifier accepts, by id. Holding the old and the new key at once is how a key
/// is rotated without downtime: add the new one to the daemon, switch the forwarder, then
/// remove the old one.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<String, SigningKey>,
}

impl KeySet {
    /// An empty set (which verifies nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from keys, refusing duplicate ids.
    pub fn try_from_keys(keys: impl IntoIterator<Item = SigningKey>) -> Result<Self, KeyError> {
        let mut set = Self::new();
        for key in keys {
            set.insert(key)?;
        }
        Ok(set)
    }

    /// Adds a key, refusing an id already present.
    pub fn insert(&mut self, key: SigningKey) -> Result<(), KeyError> {
        if self.keys.contains_key(&key.id) {
            return Err(KeyError::DuplicateId(key.id));
        }
        self.keys.insert(key.id.clone(), key);
        Ok(())
    }

    /// Removes the key with this id, returning it if it was present.
    pub fn remove(&mut self, id: &str) -> Option<SigningKey> {
        self.keys.remove(id)
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&SigningKey> {
        self.keys.get(id)
    }

    /// The ids of every key, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The three header values a signer attaches to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// Value of [`KEY_ID_HEADER`].
    pub key_id: String,
    /// Value of [`TIMESTAMP_HEADER`] (unix seconds).
    pub timestamp: u64,
    /// Value of [`SIGNATURE_HEADER`] (lowercase hex).
    pub signature: String,
}

impl SignatureHeaders {
    /// `(header name, value)` pairs, ready to set on a request.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (KEY_ID_HEADER, self.key_id.clone()),
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

/// The signature header values as a verifier found them on a request (absent when the
/// header was missing or not valid text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedSignature<'a> {
    /// Value of [`KEY_ID_HEADER`].
    pub key_id: Option<&'a str>,
    /// Value of [`TIMESTAMP_HEADER`].
    pub timestamp: Option<&'a str>,
    /// Value of [`SIGNATURE_HEADER`].
    pub signature: Option<&'a str>,
}

impl<'a> ReceivedSignature<'a> {
    /// Reads the three headers through `lookup`, which gets a header name and returns its
    /// value as text, e.g. with actix-web:
    /// `ReceivedSignature::from_lookup(|name| req.headers().get(name)?.to_str().ok())`.
    pub fn from_lookup(mut lookup: impl FnMut(&'static str) -> Option<&'a str>) -> Self {
        Self {
            key_id: lookup(KEY_ID_HEADER),
            timestamp: lookup(TIMESTAMP_HEADER),
            signature: lookup(SIGNATURE_HEADER),
        }
    }
}

/// Why a request's signature was refused. [`code`](Self::code) gives the stable kebab-case
/// code for the error body; the `Display` text is safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signature header is absent (or not valid text).
    #[error("the {header} header is missing")]
    MissingHeader {
        /// The missing header's name.
        header: &'static str,
    },
    /// A signature header is present but not of the expected form (timestamp not decimal
    /// seconds, signature not 64 hex digits).
    #[error("the {header} header is malformed")]
    MalformedHeader {
        /// The malformed header's name.
        header: &'static str,
    },
    /// The key id is not in the verifier's key set.
    #[error("signing key {key_id:?} is not known")]
    UnknownKey {
        /// The key id the request named.
        key_id: String,
    },
    /// The timestamp is further than the skew window from the verifier's clock, in the past
    /// or in the future.
    // The text names neither time: an unauthenticated caller is not told the server's clock.
    #[error("the signature timestamp is outside the accepted window of {max_skew_secs} s")]
    ExpiredSignature {
        /// The timestamp the request carried.
        timestamp: u64,
        /// The verifier's clock.
        now: u64,
        /// The window, in seconds.
        max_skew_secs: u64,
    },
    /// The signature does not match the request under the named key.
    #[error("the signature does not match the request")]
    BadSignature,
}

impl SignatureError {
    /// Stable kebab-case code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader { .. } => "missing-signature",
            Self::MalformedHeader { .. } => "malformed-signature",
            Self::UnknownKey { .. } => "unknown-key",
            Self::ExpiredSignature { .. } => "expired-signature",
            Self::BadSignature => "bad-signature",
        }
    }
}

/// The exact text that is signed: `METHOD\nPATH\nTIMESTAMP\nhex(sha256(body))`.
///
/// `method` is upper-cased; `path` is the request path as sent, without query string.
pub fn string_to_sign(method: &str, path: &str, timestamp: u64, body: &[u8]) -> String {
    let body_digest = hex::encode(Sha256::digest(body));
    format!(
        "{}\n{path}\n{timestamp}\n{body_digest}",
        method.to_ascii_uppercase()
    )
}

/// Signs a request made at `now_unix_secs` with `key`.
pub fn sign(
    key: &SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
    now_unix_secs: u64,
) -> SignatureHeaders {
    let mut mac = key.mac();
    mac.update(string_to_sign(method, path, now_unix_secs, body).as_bytes());
    SignatureHeaders {
        key_id: key.id.clone(),
        timestamp: now_unix_secs,
        signature: hex::encode(mac.finalize().into_bytes()),
    }
}

/// The signature headers of a request, checked before its body is read: all three
/// present and well-formed, the timestamp within the window, the key known. What is left
/// is [`CheckedHeaders::verify_body`].
#[derive(Debug, Clone)]
pub struct CheckedHeaders<'k> {
    key: &'k SigningKey,
    timestamp: u64,
    signature: [u8; 32],
}

impl<'k> CheckedHeaders<'k> {
    /// The id of the key the request names.
    pub fn key_id(&self) -> &'k str {
        self.key.id()
    }

    /// The signature the request carries (for replay detection).
    pub fn signature(&self) -> &[u8; 32] {
        &self.signature
    }

    /// The timestamp the request carries, unix seconds.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Checks the signature over the request, in constant time. Returns the key id.
    pub fn verify_body(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<&'k str, SignatureError> {
        let mut mac = self.key.mac();
        mac.update(string_to_sign(method, path, self.timestamp, body).as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| SignatureError::BadSignature)?;
        Ok(self.key.id())
    }
}

/// Checks the signature headers of a request without its body, with the verifier's clock
/// `now_unix_secs` and a window of `max_skew_secs` on either side of it: all three headers
/// present; timestamp decimal seconds within the window; key id known; signature 64 hex
/// digits. A server calls this before it reads (and holds) a body.
pub fn check_headers<'k>(
    keys: &'k KeySet,
    received: &ReceivedSignature<'_>,
    now_unix_secs: u64,
    max_skew_secs: u64,
) -> Result<CheckedHeaders<'k>, SignatureError> {
    let missing = |header| SignatureError::MissingHeader { header };
    let malformed = |header| SignatureError::MalformedHeader { header };
    let key_id = received.key_id.ok_or(missing(KEY_ID_HEADER))?;
    let timestamp = received.timestamp.ok_or(missing(TIMESTAMP_HEADER))?;
    let signature = received.signature.ok_or(missing(SIGNATURE_HEADER))?;

    // Strictly decimal digits: `u64::from_str` would also take a leading `+`.
    let timestamp: u64 = Some(timestamp)
        .filter(|t| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or(malformed(TIMESTAMP_HEADER))?;
    if timestamp.abs_diff(now_unix_secs) > max_skew_secs {
        return Err(SignatureError::ExpiredSignature {
            timestamp,
            now: now_unix_secs,
            max_skew_secs,
        });
    }

    let key = keys.get(key_id).ok_or_else(|| SignatureError::UnknownKey {
        key_id: key_id.to_owned(),
    })?;

    let signature: [u8; 32] = hex::decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(malformed(SIGNATURE_HEADER))?;
    Ok(CheckedHeaders {
        key,
        timestamp,
        signature,
    })
}

/// Verifies a received request against every active key in `keys`, with the verifier's clock
/// `now_unix_secs` and a window of `max_skew_secs` (usually [`DEFAULT_MAX_SKEW_SECS`]) on
/// either side of it. Returns the id of the key that signed it.
///
/// [`check_headers`], then [`CheckedHeaders::verify_body`].
pub fn verify<'k>(
    keys: &'k KeySet,
    method: &str,
    path: &str,
    body: &[u8],
    received: &ReceivedSignature<'_>,
    now_unix_secs: u64,
    max_skew_secs: u64,
) -> Result<&'k str, SignatureError> {
    check_headers(keys, received, now_unix_secs, max_skew_secs)?.verify_body(method, path, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_714_564_800; // 2024-05-01T12:00:00Z
    const BODY: &[u8] = br#"{"jobs":[{"action":"process","bucket":"b","key":"a b.jpg","eventName":"ObjectCreated:Put"}]}"#;

    fn key(id: &str, fill: u8) -> SigningKey {
        SigningKey::new(id, vec![fill; 32]).unwrap()
    }

    fn keys(list: &[&SigningKey]) -> KeySet {
        KeySet::try_from_keys(list.iter().map(|k| (*k).clone())).unwrap()
    }

    fn check(
        set: &KeySet,
        headers: &SignatureHeaders,
        body: &[u8],
        now: u64,
    ) -> Result<String, SignatureError> {
        let timestamp = headers.timestamp.to_string();
        let received = ReceivedSignature {
            key_id: Some(&headers.key_id),
            timestamp: Some(&timestamp),
            signature: Some(&headers.signature),
        };
        verify(
            set,
            "POST",
            "/v1/jobs",
            body,
            &received,
            now,
            DEFAULT_MAX_SKEW_SECS,
        )
        .map(str::to_owned)
    }

    #[test]
    fn round_trip_verifies_and_names_the_key() {
        let k = key("k1", 7);
        let headers = sign(&k, "POST", "/v1/jobs", BODY, NOW);
        assert_eq!(headers.key_id, "k1");
        assert_eq!(headers.timestamp, NOW);
        assert_eq!(headers.signature.len(), 64);
        assert_eq!(check(&keys(&[&k]), &headers, BODY, NOW), Ok("k1".into()));
    }

    #[test]
    fn signature_matches_an_independent_implementation() {
        // Computed with Python's hmac and hashlib over the same inputs:
        // hmac.new(b"0123456789abcdef0123456789abcdef",
        //   b"POST\n/v1/jobs\n1714564800\n" + sha256(b'{"jobs":[]}').hexdigest().encode(),
        //   "sha256").hexdigest()
        let k = SigningKey::new("k1", "0123456789abcdef0123456789abcdef").unwrap();
        let headers = sign(&k, "post", "/v1/jobs", br#"{"jobs":[]}"#, NOW);
        assert_eq!(
            string_to_sign("post", "/v1/jobs", NOW, br#"{"jobs":[]}"#),
            "POST\n/v1/jobs\n1714564800\n\
             0a5796e93f9b57ddf7c45f860485cbb7353fc0eda3dca753a444d0fd2a1573fe"
        );
        assert_eq!(
            headers.signature,
            "9776880f5dfda128ffc2711e41ad7dbce9089b834e575d5b730167e3d4910d30"
        );
    }

    #[test]
    fn tampered_body_method_or_path_is_a_bad_signature() {
        let k = key("k1", 7);
        let set = keys(&[&k]);
        let headers = sign(&k, "POST", "/v1/jobs", BODY, NOW);
        let mut tampered = BODY.to_vec();
        tampered[20] ^= 1;
        assert_eq!(
            check(&set, &headers, &tampered, NOW),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            check(&set, &headers, b"", NOW),
            Err(SignatureError::BadSignature)
        );

        let other_path = sign(&k, "POST", "/v1/other", BODY, NOW);
        assert_eq!(
            check(&set, &other_path, BODY, NOW),
            Err(SignatureError::BadSignature)
        );
        let other_method = sign(&k, "PUT", "/v1/jobs", BODY, NOW);
        assert_eq!(
            check(&set, &other_method, BODY, NOW),
            Err(SignatureError::BadSignature)
        );

        // A timestamp moved (within the window) after signing no longer matches.
        let mut moved = headers.clone();
        moved.timestamp += 1;
        assert_eq!(
            check(&set, &moved, BODY, NOW),
            Err(SignatureError::BadSignature)
        );

        let mut flipped = headers;
        let last = if flipped.signature.ends_with('0') {
            "1"
        } else {
            "0"
        };
        flipped.signature.replace_range(63.., last);
        assert_eq!(
            check(&set, &flipped, BODY, NOW),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let signer = key("k1", 7);
        let headers = sign(&signer, "POST", "/v1/jobs", BODY, NOW);
        // Same id, different secret.
        let error = check(&keys(&[&key("k1", 8)]), &headers, BODY, NOW).unwrap_err();
        assert_eq!(error, SignatureError::BadSignature);
        assert_eq!(error.code(), "bad-signature");
        // Id the verifier does not know.
        let error = check(&keys(&[&key("k2", 7)]), &headers, BODY, NOW).unwrap_err();
        assert_eq!(
            error,
            SignatureError::UnknownKey {
                key_id: "k1".into()
            }
        );
        assert_eq!(error.code(), "unknown-key");
        assert_eq!(
            check(&KeySet::new(), &headers, BODY, NOW)
                .unwrap_err()
                .code(),
            "unknown-key"
        );
    }

    #[test]
    fn rotated_keys_verify_while_both_are_active() {
        let old = key("2024-01", 1);
        let new = key("2024-06", 2);
        let mut set = keys(&[&old, &new]);
        let by_old = sign(&old, "POST", "/v1/jobs", BODY, NOW);
        let by_new = sign(&new, "POST", "/v1/jobs", BODY, NOW);
        assert_eq!(check(&set, &by_old, BODY, NOW), Ok("2024-01".into()));
        assert_eq!(check(&set, &by_new, BODY, NOW), Ok("2024-06".into()));

        // Rotation done: the old key is withdrawn and no longer accepted.
        assert!(set.remove("2024-01").is_some());
        assert_eq!(
            check(&set, &by_old, BODY, NOW).unwrap_err().code(),
            "unknown-key"
        );
        assert_eq!(check(&set, &by_new, BODY, NOW), Ok("2024-06".into()));
        assert_eq!(set.ids().collect::<Vec<_>>(), ["2024-06"]);
    }

    #[test]
    fn timestamps_outside_the_window_are_expired() {
        let k = key("k1", 7);
        let set = keys(&[&k]);
        let skew = DEFAULT_MAX_SKEW_SECS;
        let signed_at = |t| sign(&k, "POST", "/v1/jobs", BODY, t);
        // Exactly at the edge, in both directions: accepted.
        assert!(check(&set, &signed_at(NOW - skew), BODY, NOW).is_ok());
        assert!(check(&set, &signed_at(NOW + skew), BODY, NOW).is_ok());
        // One second past it: refused, old or from the future.
        for t in [NOW - skew - 1, NOW + skew + 1, 0] {
            let error = check(&set, &signed_at(t), BODY, NOW).unwrap_err();
            assert_eq!(
                error,
                SignatureError::ExpiredSignature {
                    timestamp: t,
                    now: NOW,
                    max_skew_secs: skew
                }
            );
            assert_eq!(error.code(), "expired-signature");
            // The caller is not told the server's clock.
            let text = error.to_string();
            assert!(
                !text.contains(&NOW.to_string()) && !text.contains("1714"),
                "{text}"
            );
        }
        // A smaller window is honoured.
        let received_ts = (NOW - 10).to_string();
        let h = signed_at(NOW - 10);
        let received = ReceivedSignature {
            key_id: Some(&h.key_id),
            timestamp: Some(&received_ts),
            signature: Some(&h.signature),
        };
        assert_eq!(
            verify(&set, "POST", "/v1/jobs", BODY, &received, NOW, 5)
                .unwrap_err()
                .code(),
            "expired-signature"
        );
    }

    #[test]
    fn headers_are_checked_before_the_body_is_read() {
        let k = key("k1", 7);
        let set = keys(&[&k]);
        let h = sign(&k, "POST", "/v1/jobs", BODY, NOW);
        let ts = h.timestamp.to_string();
        let received = ReceivedSignature {
            key_id: Some(&h.key_id),
            timestamp: Some(&ts),
            signature: Some(&h.signature),
        };
        let checked = check_headers(&set, &received, NOW, 300).unwrap();
        assert_eq!(checked.key_id(), "k1");
        assert_eq!(hex::encode(checked.signature()), h.signature);
        assert_eq!(checked.verify_body("POST", "/v1/jobs", BODY), Ok("k1"));
        assert_eq!(
            checked.verify_body("POST", "/v1/jobs", b"{}"),
            Err(SignatureError::BadSignature)
        );
        let unknown = ReceivedSignature {
            key_id: Some("nobody"),
            ..received
        };
        assert_eq!(
            check_headers(&set, &unknown, NOW, 300).unwrap_err().code(),
            "unknown-key"
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let k = key("k1", 7);
        let set = keys(&[&k]);
        let h = sign(&k, "POST", "/v1/jobs", BODY, NOW);
        let ts = h.timestamp.to_string();
        let full = ReceivedSignature {
            key_id: Some(&h.key_id),
            timestamp: Some(&ts),
            signature: Some(&h.signature),
        };
        let run = |r: &ReceivedSignature<'_>| {
            verify(
                &set,
                "POST",
                "/v1/jobs",
                BODY,
                r,
                NOW,
                DEFAULT_MAX_SKEW_SECS,
            )
        };
        assert!(run(&full).is_ok());

        for (received, header) in [
            (
                ReceivedSignature {
                    key_id: None,
                    ..full.clone()
                },
                KEY_ID_HEADER,
            ),
            (
                ReceivedSignature {
                    timestamp: None,
                    ..full.clone()
                },
                TIMESTAMP_HEADER,
            ),
            (
                ReceivedSignature {
                    signature: None,
                    ..full.clone()
                },
                SIGNATURE_HEADER,
            ),
        ] {
            let error = run(&received).unwrap_err();
            assert_eq!(error, SignatureError::MissingHeader { header });
            assert_eq!(error.code(), "missing-signature");
        }
        assert_eq!(
            run(&ReceivedSignature::default()).unwrap_err().code(),
            "missing-signature"
        );

        let plus_ts = format!("+{ts}");
        for bad in [
            "",
            "abc",
            "-5",
            "1.5",
            plus_ts.as_str(),
            "123456789012345678901",
        ] {
            let received = ReceivedSignature {
                timestamp: Some(bad),
                ..full.clone()
            };
            assert_eq!(
                run(&received),
                Err(SignatureError::MalformedHeader {
                    header: TIMESTAMP_HEADER
                }),
                "timestamp {bad:?}"
            );
        }
        let short = &h.signature[..62];
        for bad in [
            "",
            "zz",
            short,
            "xyz0000000000000000000000000000000000000000000000000000000000000",
        ] {
            let received = ReceivedSignature {
                signature: Some(bad),
                ..full.clone()
            };
            let error = run(&received).unwrap_err();
            assert_eq!(
                error,
                SignatureError::MalformedHeader {
                    header: SIGNATURE_HEADER
                }
            );
            assert_eq!(error.code(), "malformed-signature");
        }
        // Upper-case hex is the same signature.
        let upper = h.signature.to_ascii_uppercase();
        let received = ReceivedSignature {
            signature: Some(&upper),
            ..full
        };
        assert!(run(&received).is_ok());
    }

    #[test]
    fn headers_are_read_through_a_lookup() {
        let k = key("k1", 7);
        let h = sign(&k, "POST", "/v1/jobs", BODY, NOW);
        let pairs = h.pairs();
        assert_eq!(pairs[0].0, "x-pipeline-key-id");
        assert_eq!(pairs[1].0, "x-pipeline-timestamp");
        assert_eq!(pairs[2].0, "x-pipeline-signature");
        let received = ReceivedSignature::from_lookup(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        });
        let set = keys(&[&k]);
        assert_eq!(
            verify(&set, "POST", "/v1/jobs", BODY, &received, NOW, 300),
            Ok("k1")
        );
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert!(matches!(
            SigningKey::new("", vec![0; 32]),
            Err(KeyError::InvalidId(_))
        ));
        assert!(matches!(
            SigningKey::new("has space", vec![0; 32]),
            Err(KeyError::InvalidId(_))
        ));
        assert!(matches!(
            SigningKey::new("x".repeat(MAX_KEY_ID_LEN + 1), vec![0; 32]),
            Err(KeyError::InvalidId(_))
        ));
        let short = SigningKey::new("k1", "short-secret").unwrap_err();
        assert_eq!(
            short,
            KeyError::SecretTooShort {
                id: "k1".into(),
                len: 12
            }
        );
        assert!(!short.to_string().contains("short-secret"));
        assert!(SigningKey::new("prod/forwarder:2024-06_a.b", vec![0; 32]).is_ok());

        let k = SigningKey::new("k1", "a-very-secret-value-of-32-bytes!").unwrap();
        assert!(!format!("{k:?}").contains("very-secret"));
        assert!(!format!("{:?}", keys(&[&k])).contains("very-secret"));
        assert_eq!(
            KeySet::try_from_keys([k.clone(), k]).unwrap_err(),
            KeyError::DuplicateId("k1".into())
        );
    }
}

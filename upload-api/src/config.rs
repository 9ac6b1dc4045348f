//! Configuration, read once at cold start from environment variables.
//!
//! Everything goes through [`Config::from_lookup`], which takes a lookup function, so tests
//! pass a map and never touch the process environment. Every problem names the variable at
//! fault. Credentials are not configuration: they come from the SDK's default chain (in
//! Lambda, the function role's session in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`).

use std::time::Duration;

/// The records table (the daemon's; key `FileName`, index [`OWNER_INDEX`]).
pub const TABLE: &str = "TABLE";
/// The source bucket the presigned POSTs upload to.
pub const SOURCE_BUCKET: &str = "SOURCE_BUCKET";
/// Key prefix of every upload (default `uploads/`; the stack's `SourcePrefix`).
pub const SOURCE_PREFIX: &str = "SOURCE_PREFIX";
/// Base URL of the public variants (the CloudFront distribution, ending with `/`); a
/// variant without its own `Url` in the record is served at this URL followed by its key.
pub const PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";
/// Largest accepted upload in bytes: the daemon's `limits.max_source_bytes` (default
/// 209715200, 200 MiB, the daemon's default).
pub const MAX_SOURCE_BYTES: &str = "MAX_SOURCE_BYTES";
/// Seconds a presigned POST stays usable (default 300, from 60 to 3600).
pub const UPLOAD_EXPIRY_SECS: &str = "UPLOAD_EXPIRY_SECS";
/// Where browsers POST the form (default `https://<bucket>.s3.<region>.amazonaws.com/`; a
/// local S3 server's path-style bucket URL in the demo and the tests).
pub const UPLOAD_URL: &str = "UPLOAD_URL";
/// Region of the bucket, for the signature's scope (Lambda sets it).
pub const AWS_REGION: &str = "AWS_REGION";
/// Days an abandoned upload's stub record stays before DynamoDB's TTL removes it, counted
/// from the end of its upload window (default 14: longer than an event can wait in the
/// queue and its DLQ, so a late event still finds the stub and its owner).
pub const STUB_TTL_DAYS: &str = "STUB_TTL_DAYS";

/// The global secondary index of the table: partition `Owner`, sort `UploadedAt`.
pub const OWNER_INDEX: &str = "ByOwner";

/// Content types accepted, and the extension each gives the key. The stack's S3
/// notification only forwards these suffixes, so any other type would wait forever.
pub const ACCEPTED_TYPES: [(&str, &str); 5] = [
    ("image/jpeg", ".jpg"),
    ("image/png", ".png"),
    ("image/webp", ".webp"),
    ("image/heic", ".heic"),
    ("image/heif", ".heic"),
];

/// The daemon's default `limits.max_source_bytes`.
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 200 * 1024 * 1024;
/// Default of [`UPLOAD_EXPIRY_SECS`].
pub const DEFAULT_UPLOAD_EXPIRY_SECS: u64 = 300;
/// Default of [`STUB_TTL_DAYS`].
pub const DEFAULT_STUB_TTL_DAYS: u64 = 14;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub bucket: String,
    pub prefix: String,
    pub public_base_url: String,
    pub max_source_bytes: u64,
    pub upload_expiry: Duration,
    pub upload_url: String,
    pub region: String,
    pub stub_ttl: Duration,
}

/// A configuration problem, naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn problem(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads and validates the configuration through `lookup` (a variable's value, or `None`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| get(name).ok_or_else(|| problem(name, "is not set"));
        let number =
            |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                let Some(text) = get(name) else {
                    return Ok(default);
                };
                let value: u64 = text
                    .parse()
                    .map_err(|_| problem(name, format!("{text:?} is not a whole number")))?;
                if !(min..=max).contains(&value) {
                    return Err(problem(
                        name,
                        format!("{value} is not between {min} and {max}"),
                    ));
                }
                Ok(value)
            };

        let table = required(TABLE)?;
        let bucket = required(SOURCE_BUCKET)?;
        let region = required(AWS_REGION)?;
        let prefix = get(SOURCE_PREFIX).unwrap_or_else(|| "uploads/".to_owned());
        if !prefix.ends_with('/') || prefix.starts_with('/') {
            return Err(problem(
                SOURCE_PREFIX,
                format!("{prefix:?} must end with / and not start with /"),
            ));
        }
        let public_base_url = required(PUBLIC_BASE_URL)?;
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://"))
            || !public_base_url.ends_with('/')
        {
            return Err(problem(
                PUBLIC_BASE_URL,
                format!("{public_base_url:?} must be an http(s) URL ending with /"),
            ));
        }
        let max_source_bytes = number(
            MAX_SOURCE_BYTES,
            DEFAULT_MAX_SOURCE_BYTES,
            1,
            5 * 1024 * 1024 * 1024,
        )?;
        let upload_expiry = Duration::from_secs(number(
            UPLOAD_EXPIRY_SECS,
            DEFAULT_UPLOAD_EXPIRY_SECS,
            60,
            3600,
        )?);
        let stub_ttl =
            Duration::from_secs(86_400 * number(STUB_TTL_DAYS, DEFAULT_STUB_TTL_DAYS, 1, 365)?);
        let upload_url = match get(UPLOAD_URL) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => url,
            Some(url) => {
                return Err(problem(
                    UPLOAD_URL,
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
            None => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
        };
        Ok(Config {
            table,
            bucket,
            prefix,
            public_base_url,
            max_source_bytes,
            upload_expiry,
            upload_url,
            region,
            stub_ttl,
        })
    }

    /// [`Config::from_lookup`] on the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 4] = [
        (TABLE, "records"),
        (SOURCE_BUCKET, "photos"),
        (AWS_REGION, "eu-west-1"),
        (PUBLIC_BASE_URL, "https://d111111abcdef8.cloudfront.net/"),
    ];

    #[test]
    fn defaults_fill_the_rest() {
        let config = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(config.prefix, "uploads/");
        assert_eq!(config.max_source_bytes, 209_715_200);
        assert_eq!(config.upload_expiry, Duration::from_secs(300));
        assert_eq!(
            config.upload_url,
            "https://photos.s3.eu-west-1.amazonaws.com/"
        );
        assert_eq!(config.stub_ttl, Duration::from_secs(14 * 86_400));
    }

    #[test]
    fn problems_name_the_variable() {
        let mut pairs = BASE.to_vec();
        pairs.push((MAX_SOURCE_BYTES, "lots"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).unwrap_err().variable,
            MAX_SOURCE_BYTES
        );
        let mut pairs = BASE.to_vec();
        pairs.push((UPLOAD_EXPIRY_SECS, "5"));
        let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration variable UPLOAD_EXPIRY_SECS: 5 is not between 60 and 3600"
        );
        let mut pairs = BASE.to_vec();
        pairs[3] = (PUBLIC_BASE_URL, "https://cdn.example.com");
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).unwrap_err().variable,
            PUBLIC_BASE_URL
        );
        assert_eq!(
            Config::from_lookup(lookup(&BASE[1..]))
                .unwrap_err()
                .variable,
            TABLE
        );
        let mut pairs = BASE.to_vec();
        pairs.push((SOURCE_PREFIX, "uploads"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).unwrap_err().variable,
            SOURCE_PREFIX
        );
    }
}

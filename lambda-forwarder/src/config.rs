//! Configuration, read once at cold start from environment variables.
//!
//! Everything goes through [`Config::from_lookup`], which takes a lookup function, so tests
//! pass a map and never touch the process environment; [`Config::from_env`] is the same with
//! `std::env::var`. Every problem names the variable at fault. Reading the secret from SSM is
//! not done here (it needs the network): see [`crate::resolve_signing_key`].

use std::time::Duration;

use pipeline_contract::{Filter, Rules, SigningKey, VARIANT_PREFIX};
use reqwest::Url;

/// Base URL of the daemon, e.g. `http://10.0.1.12:8080` (scheme, host and port only).
pub const EC2_SERVICE_URL: &str = "EC2_SERVICE_URL";
/// Id of the signing key, sent in the `x-pipeline-key-id` header.
pub const SIGNING_KEY_ID: &str = "SIGNING_KEY_ID";
/// The signing secret itself (local use). Exactly one of this and
/// [`SIGNING_KEY_PARAMETER`] must be set.
pub const SIGNING_KEY: &str = "SIGNING_KEY";
/// Name of an SSM SecureString parameter holding the signing secret, read once at cold start.
pub const SIGNING_KEY_PARAMETER: &str = "SIGNING_KEY_PARAMETER";
/// Only keys starting with this prefix are forwarded (default: empty, every key).
pub const SOURCE_PREFIX: &str = "SOURCE_PREFIX";
/// Comma-separated key suffixes to forward, compared without regard to ASCII case
/// (default: empty, every suffix), e.g. `.jpg,.jpeg,.png,.webp`.
pub const SOURCE_SUFFIXES: &str = "SOURCE_SUFFIXES";
/// The source bucket: events from any other bucket are refused (a misrouted notification).
pub const SOURCE_BUCKET: &str = "SOURCE_BUCKET";
/// The bucket the daemon writes its variants to.
pub const OUTPUT_BUCKET: &str = "OUTPUT_BUCKET";
/// Key prefix of the daemon's variants in the output bucket, never forwarded (default
/// `variants/`).
pub const VARIANT_PREFIX_VAR: &str = "VARIANT_PREFIX";
/// Timeout of the whole call to the daemon, in milliseconds (default 5000).
pub const REQUEST_TIMEOUT_MS: &str = "REQUEST_TIMEOUT_MS";

/// Default of [`REQUEST_TIMEOUT_MS`].
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Largest accepted [`REQUEST_TIMEOUT_MS`]: Lambda's own maximum duration (15 minutes).
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 900_000;

/// Where the signing secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Given directly in [`SIGNING_KEY`]; already validated into a key.
    Inline(SigningKey),
    /// To be read from this SSM parameter (SecureString, decrypted).
    Parameter(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // `SigningKey`'s own Debug redacts the secret.
            Self::Inline(key) => f.debug_tuple("Inline").field(key).finish(),
            Self::Parameter(name) => f.debug_tuple("Parameter").field(name).finish(),
        }
    }
}

/// The forwarder's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the daemon.
    pub service_url: Url,
    /// Id of the signing key.
    pub key_id: String,
    /// Where the secret comes from.
    pub secret: SecretSource,
    /// Which keys are forwarded.
    pub filter: Filter,
    /// Timeout of the call to the daemon.
    pub request_timeout: Duration,
}

/// A configuration problem, naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it (never contains a secret).
    pub problem: String,
}

fn problem(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads and validates the configuration through `lookup` (variable name → value). An
    /// empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or_else(|| problem(name, "is not set"));

        let service_url = parse_service_url(&required(EC2_SERVICE_URL)?)?;

        let key_id = required(SIGNING_KEY_ID)?;
        let secret = match (get(SIGNING_KEY), get(SIGNING_KEY_PARAMETER)) {
            (Some(_), Some(_)) => {
                return Err(problem(
                    SIGNING_KEY,
                    format!("set only one of {SIGNING_KEY} and {SIGNING_KEY_PARAMETER}"),
                ));
            }
            (None, None) => {
                return Err(problem(
                    SIGNING_KEY,
                    format!("is not set, and neither is {SIGNING_KEY_PARAMETER}"),
                ));
            }
            (Some(secret), None) => SecretSource::Inline(
                SigningKey::new(key_id.clone(), secret)
                    .map_err(|error| problem(key_error_variable(&error), error.to_string()))?,
            ),
            (None, Some(parameter)) => {
                // Validate the id now; the secret's length is checked once it is read.
                SigningKey::new(key_id.clone(), vec![0; pipeline_contract::MIN_SECRET_LEN])
                    .map_err(|error| problem(SIGNING_KEY_ID, error.to_string()))?;
                SecretSource::Parameter(parameter.trim().to_owned())
            }
        };

        let variant_prefix = get(VARIANT_PREFIX_VAR).unwrap_or_else(|| VARIANT_PREFIX.to_owned());
        if !variant_prefix.ends_with('/') || variant_prefix.starts_with('/') {
            return Err(problem(
                VARIANT_PREFIX_VAR,
                format!(
                    "{variant_prefix:?} must be a key prefix ending with '/', like \"{VARIANT_PREFIX}\""
                ),
            ));
        }
        let rules = Rules {
            source_bucket: required(SOURCE_BUCKET)?.trim().to_owned(),
            output_bucket: required(OUTPUT_BUCKET)?.trim().to_owned(),
            variant_prefix,
        };
        let source_prefix = get(SOURCE_PREFIX).unwrap_or_default();
        if rules.is_own_output(&rules.source_bucket, &source_prefix) {
            return Err(problem(
                SOURCE_PREFIX,
                format!(
                    "{source_prefix:?} lies under the daemon's variant prefix {:?} of the same bucket: \
                     nothing could ever be forwarded",
                    rules.variant_prefix
                ),
            ));
        }
        let suffixes = get(SOURCE_SUFFIXES)
            .map(|list| parse_suffixes(&list))
            .transpose()?
            .unwrap_or_default();

        let request_timeout = match get(REQUEST_TIMEOUT_MS) {
            None => Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(ms) if (1..=MAX_REQUEST_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(problem(
                        REQUEST_TIMEOUT_MS,
                        format!(
                            "{text:?} is not a whole number of milliseconds from 1 to {MAX_REQUEST_TIMEOUT_MS}"
                        ),
                    ));
                }
            },
        };

        Ok(Self {
            service_url,
            key_id,
            secret,
            filter: Filter::new(rules, source_prefix, suffixes),
            request_timeout,
        })
    }

    /// The full URL of the jobs endpoint.
    pub fn jobs_url(&self) -> Url {
        let mut url = self.service_url.clone();
        url.set_path(pipeline_contract::JOBS_PATH);
        url
    }
}

fn key_error_variable(error: &pipeline_contract::KeyError) -> &'static str {
    match error {
        pipeline_contract::KeyError::InvalidId(_) | pipeline_contract::KeyError::DuplicateId(_) => {
            SIGNING_KEY_ID
        }
        pipeline_contract::KeyError::SecretTooShort { .. } => SIGNING_KEY,
    }
}

fn parse_service_url(text: &str) -> Result<Url, ConfigError> {
    let bad = |why: &str| problem(EC2_SERVICE_URL, format!("{text:?} {why}"));
    let url = Url::parse(text.trim()).map_err(|error| bad(&format!("is not a URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    // The signed path is the contract's JOBS_PATH: a base path would make the path the
    // daemon sees differ from the one that was signed.
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must be a base URL with no path, query or fragment, like http://10.0.1.12:8080",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(url)
}

fn parse_suffixes(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|suffix| !suffix.is_empty())
        .map(|suffix| {
            if suffix.contains('/') {
                Err(problem(
                    SOURCE_SUFFIXES,
                    format!("{suffix:?} contains '/': suffixes match the end of the file name"),
                ))
            } else {
                Ok(suffix.to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            (EC2_SERVICE_URL, "http://127.0.0.1:8080"),
            (SIGNING_KEY_ID, "k1"),
            (SIGNING_KEY, SECRET),
            (SOURCE_BUCKET, "photos"),
            (OUTPUT_BUCKET, "photos-out"),
        ]
    }

    fn rules(variant_prefix: &str) -> Rules {
        Rules {
            source_bucket: "photos".into(),
            output_bucket: "photos-out".into(),
            variant_prefix: variant_prefix.into(),
        }
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut pairs = minimal();
        for (name, value) in extra {
            pairs.retain(|(n, _)| n != name);
            pairs.push((name, value));
        }
        Config::from_lookup(lookup(&pairs))
    }

    fn without(name: &str) -> Result<Config, ConfigError> {
        let mut pairs = minimal();
        pairs.retain(|(n, _)| *n != name);
        Config::from_lookup(lookup(&pairs))
    }

    #[test]
    fn minimal_configuration_takes_the_defaults() {
        let config = with(&[]).unwrap();
        assert_eq!(config.service_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.jobs_url().as_str(), "http://127.0.0.1:8080/v1/jobs");
        assert_eq!(config.key_id, "k1");
        assert_eq!(
            config.secret,
            SecretSource::Inline(SigningKey::new("k1", SECRET).unwrap())
        );
        assert_eq!(
            config.filter,
            Filter::new(rules("variants/"), "", Vec::new())
        );
        assert_eq!(config.request_timeout, Duration::from_millis(5000));
        assert!(!format!("{config:?}").contains(SECRET));
    }

    #[test]
    fn every_variable_is_read() {
        let config = Config::from_lookup(lookup(&[
            (EC2_SERVICE_URL, "https://daemon.internal:8443/"),
            (SIGNING_KEY_ID, "prod-2024-06"),
            (SIGNING_KEY_PARAMETER, "/pipeline/prod/signing-key"),
            (SOURCE_PREFIX, "uploads/"),
            (SOURCE_SUFFIXES, " .jpg, .JPEG ,,.png "),
            (VARIANT_PREFIX_VAR, "out/"),
            (REQUEST_TIMEOUT_MS, "2500"),
            (SOURCE_BUCKET, "photos"),
            (OUTPUT_BUCKET, "photos-out"),
        ]))
        .unwrap();
        assert_eq!(
            config.jobs_url().as_str(),
            "https://daemon.internal:8443/v1/jobs"
        );
        assert_eq!(
            config.secret,
            SecretSource::Parameter("/pipeline/prod/signing-key".into())
        );
        assert_eq!(
            config.filter,
            Filter::new(
                rules("out/"),
                "uploads/",
                vec![".jpg".into(), ".JPEG".into(), ".png".into()],
            )
        );
        assert_eq!(config.request_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn missing_required_variables_are_named() {
        for name in [
            EC2_SERVICE_URL,
            SIGNING_KEY_ID,
            SOURCE_BUCKET,
            OUTPUT_BUCKET,
        ] {
            let error = without(name).unwrap_err();
            assert_eq!(error.variable, name);
            assert!(error.to_string().contains(name), "{error}");
        }
        let error = without(SIGNING_KEY).unwrap_err();
        assert_eq!(error.variable, SIGNING_KEY);
        assert!(error.to_string().contains(SIGNING_KEY_PARAMETER));
        // Empty counts as unset.
        assert_eq!(
            with(&[(EC2_SERVICE_URL, "  ")]).unwrap_err().variable,
            EC2_SERVICE_URL
        );
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&'static str, &'static str)] = &[
            (EC2_SERVICE_URL, "not a url"),
            (EC2_SERVICE_URL, "ftp://host/"),
            (EC2_SERVICE_URL, "http://host:8080/prefix"),
            (EC2_SERVICE_URL, "http://host:8080/?a=b"),
            (EC2_SERVICE_URL, "http://user:pw@host:8080"),
            (SIGNING_KEY_ID, "has space"),
            (SIGNING_KEY, "too-short"),
            (SOURCE_SUFFIXES, ".jpg,dir/.png"),
            (VARIANT_PREFIX_VAR, "variants"),
            (VARIANT_PREFIX_VAR, "/variants/"),
            (REQUEST_TIMEOUT_MS, "0"),
            (REQUEST_TIMEOUT_MS, "fast"),
            (REQUEST_TIMEOUT_MS, "900001"),
            (REQUEST_TIMEOUT_MS, "-5"),
        ];
        for (name, value) in cases {
            let error = with(&[(name, value)]).unwrap_err();
            assert_eq!(error.variable, *name, "{name}={value}: {error}");
        }
        let error = with(&[(SIGNING_KEY, "too-short")]).unwrap_err();
        assert!(!error.to_string().contains("too-short"), "{error}");
        // A source prefix under the variant prefix is refused only where it matters: when
        // sources and variants share one bucket.
        let same_bucket = with(&[
            (OUTPUT_BUCKET, "photos"),
            (SOURCE_PREFIX, "variants/uploads/"),
        ])
        .unwrap_err();
        assert_eq!(same_bucket.variable, SOURCE_PREFIX);
        assert!(with(&[(SOURCE_PREFIX, "variants/uploads/")]).is_ok());
    }

    #[test]
    fn both_secret_sources_at_once_are_refused() {
        let error = with(&[(SIGNING_KEY_PARAMETER, "/p")]).unwrap_err();
        assert_eq!(error.variable, SIGNING_KEY);
        assert!(error.to_string().contains(SIGNING_KEY_PARAMETER));
    }

    #[test]
    fn parameter_source_still_checks_the_key_id() {
        let mut pairs = minimal();
        pairs.retain(|(n, _)| *n != SIGNING_KEY);
        pairs.push((SIGNING_KEY_PARAMETER, "/p"));
        pairs.retain(|(n, _)| *n != SIGNING_KEY_ID);
        pairs.push((SIGNING_KEY_ID, "bad id"));
        let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(error.variable, SIGNING_KEY_ID);
    }
}

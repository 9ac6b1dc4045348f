//! Configuration: typed defaults, then a TOML file, then `EC2_SERVICE__SECTION__KEY`
//! environment variables, then [`Settings::validate`]. Every key is documented once, in
//! `ec2-service/config.example.toml`, with its unit, default and environment name.
//!
//! What `serve` needs beyond the defaults (buckets, table, signing keys) is checked by
//! [`Settings::validate_for_serve`]; the operator commands only need `[admin]`. Nothing
//! here reads AWS credentials: the SDK's default chain (the instance role) supplies them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline_contract::{KeySet, SigningKey};
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
    pub intake: IntakeSettings,
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub scratch: ScratchSettings,
    pub aws: AwsSettings,
    pub signing: SigningSettings,
    pub retry: RetrySettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub recipe: Recipe,
    pub limits: Limits,
    pub watermark: WatermarkSettings,
}

/// Where jobs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntakeMode {
    /// The forwarder Lambda POSTs signed jobs (`/v1/jobs`); they are kept on the scratch
    /// disk. One box.
    Http,
    /// The daemon long-polls the SQS queue the S3 notification feeds; the queue keeps the
    /// jobs. Any number of boxes (fleet mode).
    Sqs,
}

/// The `[intake]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    pub mode: IntakeMode,
    /// The queue the S3 notification feeds (`sqs` mode).
    pub queue_url: String,
    /// Long-poll wait of one ReceiveMessage, seconds (1-20).
    pub wait_secs: u32,
    /// Seconds a received message stays invisible; extended while its job works, so a
    /// render slower than this is never delivered to a second daemon (5-43200).
    pub visibility_timeout_secs: u32,
    /// Only keys starting with this are processed (`sqs` mode), as the forwarder's
    /// SOURCE_PREFIX.
    pub source_prefix: String,
    /// Comma-separated key suffixes processed (ASCII case ignored; empty: all), as the
    /// forwarder's SOURCE_SUFFIXES.
    pub source_suffixes: String,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        IntakeSettings {
            mode: IntakeMode::Http,
            queue_url: String::new(),
            wait_secs: 20,
            visibility_timeout_secs: 120,
            source_prefix: String::new(),
            source_suffixes: String::new(),
        }
    }
}

impl IntakeSettings {
    /// The suffixes as a list.
    pub fn suffixes(&self) -> Vec<String> {
        self.source_suffixes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The `[server]` section: the public listener, the queue and the workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address of the jobs, health and metrics endpoints.
    pub listen: String,
    /// Seconds in-flight jobs get to finish after SIGTERM.
    pub drain_secs: u64,
    /// Most unfinished jobs (waiting, retrying or in flight) held at once; past it,
    /// `POST /v1/jobs` answers 503.
    pub queue_capacity: usize,
    /// Jobs in flight at once (downloads and uploads overlap the renders, which run at
    /// most `render_threads` at a time); 0 means eight per CPU core.
    pub concurrency: usize,
    /// Threads of the rendering pool; 0 means one per CPU core.
    pub render_threads: usize,
    /// Memory the renders in progress may take together, in bytes (estimated per source
    /// from its header).
    pub memory_budget_bytes: u64,
    /// Largest `POST /v1/jobs` body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a request's body may take to arrive, after its signature headers passed.
    pub body_timeout_secs: u64,
    /// Request bodies held in memory at once (each at most `max_body_bytes`).
    pub max_bodies_in_memory: usize,
    /// Open connections on the public listener, at most.
    pub max_connections: usize,
    /// Threads answering HTTP requests.
    pub http_workers: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "0.0.0.0:8080".to_owned(),
            drain_secs: 60,
            queue_capacity: 10_000,
            concurrency: 0,
            render_threads: 0,
            memory_budget_bytes: 4 << 30,
            max_body_bytes: 1 << 20,
            body_timeout_secs: 10,
            max_bodies_in_memory: 64,
            max_connections: 512,
            http_workers: 2,
        }
    }
}

/// The `[admin]` section: the loopback-only listener the operator commands talk to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Loopback address of the admin endpoints (`status`, `jobs`, `reprocess`, `reconcile`).
    pub listen: String,
    /// Objects per listing page while reconciling (1-1000; one page is held at a time).
    pub reconcile_page_size: u32,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: "127.0.0.1:8081".to_owned(),
            reconcile_page_size: 1000,
        }
    }
}

/// The `[scratch]` section: the local disk that holds accepted jobs and downloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScratchSettings {
    pub dir: PathBuf,
    /// Free space below which jobs are refused (503) and `/readyz` fails, in bytes.
    pub min_free_bytes: u64,
}

impl Default for ScratchSettings {
    fn default() -> Self {
        ScratchSettings {
            dir: PathBuf::from("/var/lib/ec2-service"),
            min_free_bytes: 1 << 30,
        }
    }
}

/// The `[aws]` section: where sources, variants and records live, and how to reach them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    /// Region; absent means the SDK's default chain (the instance's region on EC2).
    pub region: Option<String>,
    /// Endpoint of a local S3/DynamoDB server (moto); absent means AWS.
    pub endpoint_url: Option<String>,
    /// S3 endpoint when it differs from `endpoint_url` (an S3 interface VPC endpoint).
    pub s3_endpoint_url: Option<String>,
    /// Path-style S3 addressing (`http://host/bucket/key`), which local servers need.
    pub force_path_style: bool,
    /// The bucket sources are uploaded to; jobs for any other bucket are refused.
    pub source_bucket: String,
    /// The bucket variants are written to.
    pub output_bucket: String,
    /// The DynamoDB table of records (partition key `FileName`, a string).
    pub table: String,
    /// Key prefix of the variants in the output bucket; must end with `/`.
    #[serde(alias = "derived_prefix")]
    pub variant_prefix: String,
    /// Base URL the variants are served from (the CloudFront distribution,
    /// `https://d1234.cloudfront.net`): each variant in a record gets `Url` = base + key.
    pub public_base_url: Option<String>,
    /// Connection timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Timeout of one attempt of one AWS call, in milliseconds (a download's body has its
    /// own stall timeout of the same length).
    pub attempt_timeout_ms: u64,
    /// Attempts the SDK makes for one call before the job's own retry takes over.
    pub sdk_max_attempts: u32,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            endpoint_url: None,
            s3_endpoint_url: None,
            force_path_style: false,
            source_bucket: String::new(),
            output_bucket: String::new(),
            table: String::new(),
            variant_prefix: pipeline_contract::VARIANT_PREFIX.to_owned(),
            public_base_url: None,
            connect_timeout_ms: 3_000,
            attempt_timeout_ms: 30_000,
            sdk_max_attempts: 3,
        }
    }
}

/// The `[signing]` section: the keys `POST /v1/jobs` requests are verified against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningSettings {
    /// `KEYID:SECRET[,KEYID2:SECRET2]`; only ever from the environment.
    pub keys: Secret,
    /// Tolerated distance between a request's timestamp and this clock, in seconds.
    pub max_skew_secs: u64,
}

/// A configuration value that is never printed (`Debug` and `Serialize` redact it).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl SigningSettings {
    /// Parses `keys` into the set of active keys. Errors name the key id, never a secret.
    pub fn key_set(&self) -> Result<KeySet, String> {
        let mut set = KeySet::new();
        for (i, entry) in self.keys.0.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((id, secret)) = entry.split_once(':') else {
                return Err(format!(
                    "signing.keys: entry {} is not of the form KEYID:SECRET",
                    i + 1
                ));
            };
            let key = SigningKey::new(id.trim(), secret.trim().as_bytes().to_vec())
                .map_err(|e| format!("signing.keys: {e}"))?;
            set.insert(key).map_err(|e| format!("signing.keys: {e}"))?;
        }
        Ok(set)
    }
}

/// The `[retry]` section: how transient failures (throttling, 5xx, timeouts, connection
/// errors) are retried before a job ends FAILED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts of one job, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt, in milliseconds; doubled each time, with jitter.
    pub base_delay_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    pub max_delay_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 8,
            base_delay_ms: 1_000,
            max_delay_ms: 120_000,
        }
    }
}

impl RetrySettings {
    pub fn base_delay(&self) -> Duration {
        Duration::from_millis(self.base_delay_ms)
    }

    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (journald adds the timestamp).
    Text,
    /// One JSON object per line.
    Json,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter: a level (`info`) or directives (`info,ec2_service=debug`).
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// The `[metrics]` section: the job metrics the daemon publishes to CloudWatch
/// (`aws::cloudwatch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// CloudWatch namespace; empty means nothing is published.
    pub namespace: String,
    /// Value of the `Stack` dimension of every metric (the stack's name).
    pub stack: String,
    /// Seconds between two publishes (1-300), aligned on multiples of it since the epoch.
    pub interval_secs: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            namespace: String::new(),
            stack: String::new(),
            interval_secs: 60,
        }
    }
}

impl MetricsSettings {
    pub fn is_enabled(&self) -> bool {
        !self.namespace.is_empty()
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// CloudWatch's own rules for a namespace and a dimension value, checked before the
    /// first publish rather than refused by every one.
    fn validate(&self) -> Result<(), String> {
        if !(1..=300).contains(&self.interval_secs) {
            return Err(format!(
                "metrics.interval_secs: {} must be between 1 and 300 (the daemon-silent alarm waits 5 minutes)",
                self.interval_secs
            ));
        }
        if !self.is_enabled() {
            return Ok(());
        }
        let namespace = &self.namespace;
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
        if namespace.len() > 255 || namespace.trim().is_empty() || !namespace.chars().all(allowed) {
            return Err(format!(
                "metrics.namespace: {namespace:?} must be 1 to 255 of A-Z a-z 0-9 . - _ / # : and space"
            ));
        }
        if namespace.starts_with("AWS/") {
            return Err(format!(
                "metrics.namespace: {namespace:?} must not start with AWS/ (reserved for AWS services)"
            ));
        }
        let stack = &self.stack;
        if stack.trim().is_empty() {
            return Err(
                "metrics.stack: must be set when metrics.namespace is (the Stack dimension the alarms read)"
                    .to_owned(),
            );
        }
        if stack.len() > 1024 || !stack.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
            return Err(format!(
                "metrics.stack: {stack:?} must be 1 to 1024 printable ASCII characters"
            ));
        }
        Ok(())
    }
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
        let mut settings: Settings = builder
            .add_source(environment)
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        // An empty optional URL (a placeholder filled with nothing) means unset.
        for url in [
            &mut settings.aws.endpoint_url,
            &mut settings.aws.s3_endpoint_url,
            &mut settings.aws.public_base_url,
        ] {
            if url.as_deref().is_some_and(|u| u.trim().is_empty()) {
                *url = None;
            }
        }
        settings.validate().map_err(ConfigError)?;
        Ok(settings)
    }

    /// Loads the configuration the way every subcommand does: `--config FILE` if given
    /// (it must exist), else the default path if it exists, else the built-in defaults;
    /// then the process environment.
    pub fn load_for_cli(config: Option<&Path>) -> Result<Settings, ConfigError> {
        let default = Path::new(DEFAULT_CONFIG_PATH);
        let (file, required) = match config {
            Some(path) => (Some(path), true),
            None if default.exists() => (Some(default), true),
            None => (None, false),
        };
        Settings::load(file, required, None)
    }

    /// Checks every section; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_service()?;
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

    fn validate_service(&self) -> Result<(), String> {
        if self.intake.visibility_timeout_secs < 5 {
            return Err(format!(
                "intake.visibility_timeout_secs: {} is under the minimum of 5",
                self.intake.visibility_timeout_secs
            ));
        }
        if let Some(bad) = self.intake.suffixes().iter().find(|s| s.contains('/')) {
            return Err(format!(
                "intake.source_suffixes: {bad:?} is not a key suffix (it has a /)"
            ));
        }
        let server = &self.server;
        parse_addr("server.listen", &server.listen)?;
        let admin = parse_addr("admin.listen", &self.admin.listen)?;
        if !admin.ip().is_loopback() {
            return Err(format!(
                "admin.listen: {} is not a loopback address (the admin endpoints have no authentication)",
                self.admin.listen
            ));
        }
        let positive = [
            ("server.queue_capacity", server.queue_capacity as u64),
            ("server.memory_budget_bytes", server.memory_budget_bytes),
            ("server.max_body_bytes", server.max_body_bytes as u64),
            ("server.body_timeout_secs", server.body_timeout_secs),
            (
                "server.max_bodies_in_memory",
                server.max_bodies_in_memory as u64,
            ),
            ("server.max_connections", server.max_connections as u64),
            (
                "admin.reconcile_page_size",
                u64::from(self.admin.reconcile_page_size),
            ),
            ("server.http_workers", server.http_workers as u64),
            ("aws.connect_timeout_ms", self.aws.connect_timeout_ms),
            ("aws.attempt_timeout_ms", self.aws.attempt_timeout_ms),
            ("aws.sdk_max_attempts", u64::from(self.aws.sdk_max_attempts)),
            ("retry.max_attempts", u64::from(self.retry.max_attempts)),
            ("retry.max_delay_ms", self.retry.max_delay_ms),
            ("signing.max_skew_secs", self.signing.max_skew_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key}: must be greater than 0"));
            }
        }
        let at_most = [
            ("server.drain_secs", server.drain_secs, 3_600),
            ("server.concurrency", server.concurrency as u64, 1_024),
            ("server.render_threads", server.render_threads as u64, 1_024),
            ("server.http_workers", server.http_workers as u64, 64),
            (
                "retry.max_attempts",
                u64::from(self.retry.max_attempts),
                100,
            ),
            ("signing.max_skew_secs", self.signing.max_skew_secs, 3_600),
            ("server.body_timeout_secs", server.body_timeout_secs, 300),
            ("intake.wait_secs", u64::from(self.intake.wait_secs), 20),
            (
                "intake.visibility_timeout_secs",
                u64::from(self.intake.visibility_timeout_secs),
                43_200,
            ),
            (
                "admin.reconcile_page_size",
                u64::from(self.admin.reconcile_page_size),
                1_000,
            ),
        ];
        for (key, value, max) in at_most {
            if value > max {
                return Err(format!("{key}: {value} is over the maximum of {max}"));
            }
        }
        if self.retry.base_delay_ms > self.retry.max_delay_ms {
            return Err(format!(
                "retry.base_delay_ms: {} is over retry.max_delay_ms ({})",
                self.retry.base_delay_ms, self.retry.max_delay_ms
            ));
        }
        if self.scratch.dir.as_os_str().is_empty() || !self.scratch.dir.is_absolute() {
            return Err(format!(
                "scratch.dir: {:?} must be an absolute path",
                self.scratch.dir
            ));
        }
        let prefix = &self.aws.variant_prefix;
        if prefix.len() < 2 || !prefix.ends_with('/') || prefix.starts_with('/') {
            return Err(format!(
                "aws.variant_prefix: {prefix:?} must be a key prefix ending with '/', like \"variants/\""
            ));
        }
        for (key, url) in [
            ("aws.endpoint_url", &self.aws.endpoint_url),
            ("aws.s3_endpoint_url", &self.aws.s3_endpoint_url),
            ("aws.public_base_url", &self.aws.public_base_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(format!(
                    "{key}: {url:?} must start with http:// or https://"
                ));
            }
        }
        if let Some(region) = &self.aws.region
            && region.trim().is_empty()
        {
            return Err("aws.region: must not be empty when set".to_owned());
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("log.level: {:?} is not a valid filter: {e}", self.log.level))?;
        self.metrics.validate()?;
        self.signing.key_set()?;
        Ok(())
    }

    /// What `serve` needs on top of [`validate`](Self::validate): the buckets, the table
    /// and at least one signing key.
    pub fn validate_for_serve(&self) -> Result<(), String> {
        let required = [
            ("aws.source_bucket", &self.aws.source_bucket),
            ("aws.output_bucket", &self.aws.output_bucket),
            ("aws.table", &self.aws.table),
        ];
        for (key, value) in required {
            if value.trim().is_empty() {
                return Err(format!("{key}: must be set to serve"));
            }
        }
        if self.aws.source_bucket == self.aws.output_bucket {
            return Err(
                "aws.output_bucket: must differ from aws.source_bucket (variants must never trigger events)"
                    .to_owned(),
            );
        }
        if self.intake.mode == IntakeMode::Sqs {
            if self.intake.queue_url.trim().is_empty() {
                return Err(
                    "intake.queue_url: must be set when intake.mode is \"sqs\" (set EC2_SERVICE__INTAKE__QUEUE_URL)"
                        .to_owned(),
                );
            }
            return Ok(());
        }
        if self.signing.key_set()?.is_empty() {
            return Err(
                "signing.keys: at least one KEYID:SECRET is needed to serve (set EC2_SERVICE__SIGNING__KEYS)"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The contract's rules for this pipeline's buckets.
    pub fn rules(&self) -> pipeline_contract::Rules {
        pipeline_contract::Rules {
            source_bucket: self.aws.source_bucket.clone(),
            output_bucket: self.aws.output_bucket.clone(),
            variant_prefix: self.aws.variant_prefix.clone(),
        }
    }

    /// Jobs processed at once.
    pub fn concurrency(&self) -> usize {
        match self.server.concurrency {
            // A job spends most of its life waiting on S3 and DynamoDB: eight per core keep
            // the render pool busy while the others download and upload (with four, a
            // core was idle a tenth of the time in scripts/bench-e2e).
            0 => JOBS_PER_CORE * cores(),
            n => n,
        }
    }

    /// Threads of the rendering pool.
    pub fn render_threads(&self) -> usize {
        match self.server.render_threads {
            0 => cores(),
            n => n,
        }
    }
}

impl Default for SigningSettings {
    fn default() -> Self {
        SigningSettings {
            keys: Secret::default(),
            max_skew_secs: pipeline_contract::DEFAULT_MAX_SKEW_SECS,
        }
    }
}

/// Jobs in flight per core when `[server] concurrency` is 0.
pub const JOBS_PER_CORE: usize = 8;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not an address of the form IP:PORT"))
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

    /// The production file the stack installs (systemd/config.toml), with its placeholders
    /// filled as systemd/install-release.sh fills them and the signing keys from the
    /// environment as secrets.env gives them, is what `serve` accepts; and it only differs
    /// from the defaults where it says so.
    #[test]
    fn production_config_loads_for_serve() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(workspace.join("systemd/config.toml")).unwrap();
        let installer =
            std::fs::read_to_string(workspace.join("systemd/install-release.sh")).unwrap();
        let values = [
            ("@REGION@", "eu-west-1"),
            ("@MEMORY_BUDGET_BYTES@", "2576980377"),
            (
                "@SOURCE_BUCKET@",
                "image-pipeline-prod-source-123456789012-eu-west-1",
            ),
            (
                "@OUTPUT_BUCKET@",
                "image-pipeline-prod-output-123456789012-eu-west-1",
            ),
            ("@TABLE@", "pipeline-prod-RecordTable-1ABC"),
            (
                "@PUBLIC_BASE_URL@",
                "https://d111111abcdef8.cloudfront.net/",
            ),
            ("@STACK_NAME@", "pipeline-prod"),
        ];
        let mut filled = text.clone();
        for (placeholder, value) in values {
            assert!(
                installer.contains(&format!("s|{placeholder}|")),
                "install-release.sh does not fill {placeholder}"
            );
            filled = filled.replace(placeholder, value);
        }
        let left: Vec<&str> = filled
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('@'))
            .collect();
        assert!(left.is_empty(), "placeholders nobody fills: {left:?}");

        let dir =
            std::env::temp_dir().join(format!("ec2-service-prod-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, filled).unwrap();
        let secret = "Q7wWx2sV9kTz4mNc8bLr1pYd6hFg3jKa5eUo0iRt2yHq7vXn";
        let env = HashMap::from([(
            "EC2_SERVICE__SIGNING__KEYS".to_owned(),
            format!("k1:{secret}"),
        )]);
        let loaded = Settings::load(Some(&path), true, Some(env));
        std::fs::remove_dir_all(&dir).unwrap();
        let loaded = loaded.unwrap();
        loaded.validate_for_serve().unwrap();

        let mut expected = Settings::default();
        expected.server.listen = "0.0.0.0:8080".to_owned();
        expected.server.drain_secs = 60;
        expected.server.memory_budget_bytes = 2_576_980_377;
        expected.scratch.dir = PathBuf::from("/var/lib/ec2-service");
        expected.aws.region = Some("eu-west-1".to_owned());
        expected.aws.source_bucket = values[2].1.to_owned();
        expected.aws.output_bucket = values[3].1.to_owned();
        expected.aws.table = values[4].1.to_owned();
        expected.aws.public_base_url = Some(values[5].1.to_owned());
        // A deployed box publishes its job metrics where the stack's alarms read them.
        expected.metrics.namespace = "ImagePipeline".to_owned();
        expected.metrics.stack = values[6].1.to_owned();
        expected.signing = loaded.signing.clone();
        assert_eq!(loaded, expected);
        assert_eq!(loaded.signing.key_set().unwrap().len(), 1);
    }
}

#[cfg(test)]
mod service_sections {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        Settings::load(None, false, env(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_daemon_sections_come_from_the_environment_and_are_validated() {
        let s = Settings::load(
            None,
            false,
            env(&[
                ("EC2_SERVICE__SERVER__LISTEN", "127.0.0.1:9000"),
                ("EC2_SERVICE__SERVER__QUEUE_CAPACITY", "7"),
                ("EC2_SERVICE__AWS__ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("EC2_SERVICE__AWS__FORCE_PATH_STYLE", "true"),
                ("EC2_SERVICE__AWS__SOURCE_BUCKET", "photos"),
                ("EC2_SERVICE__AWS__OUTPUT_BUCKET", "variants"),
                ("EC2_SERVICE__AWS__TABLE", "records"),
                (
                    "EC2_SERVICE__SIGNING__KEYS",
                    "old:0123456789abcdef0123456789abcdef, new:fedcba9876543210fedcba9876543210",
                ),
                ("EC2_SERVICE__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:9000");
        assert_eq!(s.server.queue_capacity, 7);
        assert_eq!(s.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(s.aws.force_path_style);
        assert_eq!(s.log.format, LogFormat::Json);
        s.validate_for_serve().unwrap();
        let keys = s.signing.key_set().unwrap();
        assert_eq!(keys.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert!(
            !format!("{s:?}").contains("0123456789abcdef"),
            "secrets never print"
        );
        assert!(s.concurrency() >= 1 && s.render_threads() >= 1);

        assert!(error(&[("EC2_SERVICE__SERVER__LISTEN", "8080")]).contains("server.listen"));
        assert!(error(&[("EC2_SERVICE__ADMIN__LISTEN", "0.0.0.0:8081")]).contains("loopback"));
        assert!(
            error(&[("EC2_SERVICE__SERVER__QUEUE_CAPACITY", "0")])
                .contains("server.queue_capacity")
        );
        assert!(error(&[("EC2_SERVICE__SCRATCH__DIR", "relative/dir")]).contains("scratch.dir"));
        assert!(
            error(&[("EC2_SERVICE__AWS__VARIANT_PREFIX", "variants")])
                .contains("aws.variant_prefix")
        );
        assert!(
            error(&[("EC2_SERVICE__AWS__ENDPOINT_URL", "localhost:5000")])
                .contains("aws.endpoint_url")
        );
        assert!(error(&[("EC2_SERVICE__LOG__LEVEL", "info,=x=y")]).contains("log.level"));
        assert!(error(&[("EC2_SERVICE__LOG__FORMAT", "xml")]).contains("xml"));
        assert!(
            error(&[("EC2_SERVICE__RETRY__BASE_DELAY_MS", "999999999")])
                .contains("retry.base_delay_ms")
        );
        let metrics = Settings::load(
            None,
            false,
            env(&[
                ("EC2_SERVICE__METRICS__NAMESPACE", "ImagePipeline"),
                ("EC2_SERVICE__METRICS__STACK", "pipeline-prod"),
                ("EC2_SERVICE__METRICS__INTERVAL_SECS", "2"),
            ]),
        )
        .unwrap()
        .metrics;
        assert!(metrics.is_enabled());
        assert_eq!(metrics.stack, "pipeline-prod");
        assert_eq!(metrics.interval(), Duration::from_secs(2));
        assert!(!Settings::default().metrics.is_enabled(), "off by default");
        for (pairs, key) in [
            (
                &[("EC2_SERVICE__METRICS__INTERVAL_SECS", "0")][..],
                "metrics.interval_secs",
            ),
            (
                &[("EC2_SERVICE__METRICS__INTERVAL_SECS", "301")][..],
                "metrics.interval_secs",
            ),
            (
                &[("EC2_SERVICE__METRICS__NAMESPACE", "ImagePipeline")][..],
                "metrics.stack",
            ),
            (
                &[
                    ("EC2_SERVICE__METRICS__NAMESPACE", "AWS/EC2"),
                    ("EC2_SERVICE__METRICS__STACK", "s"),
                ][..],
                "metrics.namespace",
            ),
            (
                &[
                    ("EC2_SERVICE__METRICS__NAMESPACE", "Image€Pipeline"),
                    ("EC2_SERVICE__METRICS__STACK", "s"),
                ][..],
                "metrics.namespace",
            ),
            (
                &[
                    ("EC2_SERVICE__METRICS__NAMESPACE", "ImagePipeline"),
                    ("EC2_SERVICE__METRICS__STACK", "   "),
                ][..],
                "metrics.stack",
            ),
        ] {
            let e = error(pairs);
            assert!(e.contains(key), "{pairs:?}: {e}");
        }

        let bad_key = error(&[("EC2_SERVICE__SIGNING__KEYS", "k1:tooshort")]);
        assert!(
            bad_key.contains("signing.keys") && !bad_key.contains("tooshort"),
            "{bad_key}"
        );
        assert!(error(&[("EC2_SERVICE__SIGNING__KEYS", "no-colon")]).contains("KEYID:SECRET"));

        let defaults = Settings::default();
        assert!(
            defaults
                .validate_for_serve()
                .unwrap_err()
                .contains("aws.source_bucket")
        );
        let same = Settings {
            aws: AwsSettings {
                source_bucket: "b".into(),
                output_bucket: "b".into(),
                table: "t".into(),
                ..AwsSettings::default()
            },
            ..Settings::default()
        };
        assert!(
            same.validate_for_serve()
                .unwrap_err()
                .contains("aws.output_bucket")
        );
    }
}

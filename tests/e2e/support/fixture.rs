//! A fresh world per test on the shared moto server: a source and an output bucket, a
//! records table, a scratch directory, a signing key, and blocking helpers to look at
//! them through the real SDK.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
use pipeline_contract::{JobAction, JobRequest, SigningKey};

pub const KEY_ID: &str = "forwarder-1";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-e2e";

pub type Item = HashMap<String, AttributeValue>;

/// An object read back from S3.
#[derive(Debug)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub metadata: HashMap<String, String>,
    /// The CRC32 checksum S3 stored with the object (base64), if the PUT sent one.
    pub checksum_crc32: Option<String>,
}

#[derive(Debug)]
pub struct Fixture {
    pub name: String,
    pub source_bucket: String,
    pub output_bucket: String,
    pub table: String,
    pub scratch: PathBuf,
    runtime: tokio::runtime::Runtime,
    sdk: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Fixture {
    /// Creates the buckets (the source one versioned when `versioned`) and the table.
    pub fn new(name: &str) -> Fixture {
        Fixture::with_versioning(name, false)
    }

    pub fn with_versioning(name: &str, versioned: bool) -> Fixture {
        static N: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "{}-{}-{}",
            name.replace('_', "-"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (sdk, s3, dynamodb) = runtime.block_on(async {
            let sdk = sdk_config().await;
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            );
            let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
            (sdk, s3, dynamodb)
        });
        let fixture = Fixture {
            source_bucket: truncate_bucket(&format!("src-{unique}")),
            output_bucket: truncate_bucket(&format!("out-{unique}")),
            table: format!("records-{unique}"),
            scratch: std::env::temp_dir().join(format!("ec2-service-e2e-{unique}")),
            name: unique,
            runtime,
            sdk,
            s3,
            dynamodb,
        };
        let _ = std::fs::remove_dir_all(&fixture.scratch);
        fixture.runtime.block_on(async {
            for bucket in [&fixture.source_bucket, &fixture.output_bucket] {
                fixture
                    .s3
                    .create_bucket()
                    .bucket(bucket)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
            }
            if versioned {
                use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
                fixture
                    .s3
                    .put_bucket_versioning()
                    .bucket(&fixture.source_bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        });
        fixture.create_table();
        fixture
    }

    /// The same buckets and table, with its own scratch directory and config file: a
    /// second daemon of the same pipeline.
    pub fn sibling(&self, name: &str) -> Fixture {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let scratch = self.scratch.with_file_name(format!(
            "{}-{name}",
            self.scratch.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        Fixture {
            name: format!("{}-{name}", self.name),
            source_bucket: self.source_bucket.clone(),
            output_bucket: self.output_bucket.clone(),
            table: self.table.clone(),
            scratch,
            runtime,
            sdk: self.sdk.clone(),
            s3: self.s3.clone(),
            dynamodb: self.dynamodb.clone(),
        }
    }

    /// Creates the records table (partition key `FileName`).
    pub fn create_table(&self) {
        self.runtime.block_on(async {
            self.dynamodb
                .create_table()
                .table_name(&self.table)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("FileName")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("FileName")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .unwrap(),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create table: {e:?}"));
        });
    }

    /// Deletes the records table.
    pub fn delete_table(&self) {
        self.runtime.block_on(async {
            self.dynamodb
                .delete_table()
                .table_name(&self.table)
                .send()
                .await
                .unwrap_or_else(|e| panic!("delete table: {e:?}"));
        });
    }

    /// The signing key the daemon is configured with.
    pub fn key(&self) -> SigningKey {
        SigningKey::new(KEY_ID, SECRET).unwrap()
    }

    /// Uploads a source; returns its ETag.
    pub fn put_source(&self, key: &str, bytes: &[u8]) -> String {
        self.runtime.block_on(async {
            let out = self
                .s3
                .put_object()
                .bucket(&self.source_bucket)
                .key(key)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
            out.e_tag().unwrap_or_default().to_owned()
        })
    }

    /// An `ObjectCreated:Put` job for `key` as the forwarder would send it.
    pub fn put_job(
        &self,
        key: &str,
        sequencer: Option<&str>,
        event_time: Option<&str>,
    ) -> JobRequest {
        JobRequest {
            action: JobAction::Process,
            bucket: self.source_bucket.clone(),
            key: key.to_owned(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: sequencer.map(str::to_owned),
            event_time: event_time.map(str::to_owned),
            event_name: "ObjectCreated:Put".to_owned(),
        }
    }

    /// An `ObjectRemoved:Delete` job for `key`.
    pub fn delete_job(
        &self,
        key: &str,
        sequencer: Option<&str>,
        event_time: Option<&str>,
    ) -> JobRequest {
        JobRequest {
            action: JobAction::Delete,
            event_name: "ObjectRemoved:Delete".to_owned(),
            ..self.put_job(key, sequencer, event_time)
        }
    }

    /// Uploads a source in parts of `part_size` bytes (S3's minimum is 5 MiB for all but
    /// the last); returns its ETag (`"...-N"` for N parts).
    pub fn put_source_multipart(&self, key: &str, bytes: &[u8], part_size: usize) -> String {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        self.runtime.block_on(async {
            let upload = self
                .s3
                .create_multipart_upload()
                .bucket(&self.source_bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create multipart upload {key}: {e:?}"));
            let upload_id = upload.upload_id().expect("an upload id");
            let mut parts = Vec::new();
            for (i, chunk) in bytes.chunks(part_size).enumerate() {
                let number = i as i32 + 1;
                let part = self
                    .s3
                    .upload_part()
                    .bucket(&self.source_bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk.to_vec()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("upload part {number} of {key}: {e:?}"));
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .build(),
                );
            }
            let done = self
                .s3
                .complete_multipart_upload()
                .bucket(&self.source_bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("complete multipart upload {key}: {e:?}"));
            done.e_tag().unwrap_or_default().to_owned()
        })
    }

    /// The SDK configuration pointing at moto (for clients of other services).
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// Runs `future` on this fixture's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Sends S3's notifications for created and removed objects under `prefix` of the
    /// source bucket to the queue `queue_arn`, as the stack wires them.
    pub fn notify_queue(&self, queue_arn: &str, prefix: &str) {
        use aws_sdk_s3::types::{
            Event, FilterRule, FilterRuleName, NotificationConfiguration,
            NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
        };
        let queue = QueueConfiguration::builder()
            .queue_arn(queue_arn)
            .events(Event::from("s3:ObjectCreated:*"))
            .events(Event::from("s3:ObjectRemoved:*"))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::Prefix)
                                    .value(prefix)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
            .unwrap();
        self.runtime.block_on(async {
            self.s3
                .put_bucket_notification_configuration()
                .bucket(&self.source_bucket)
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .queue_configurations(queue)
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("put bucket notification: {e:?}"));
        });
    }

    pub fn delete_source(&self, key: &str) {
        self.runtime.block_on(async {
            self.s3
                .delete_object()
                .bucket(&self.source_bucket)
                .key(key)
                .send()
                .await
                .unwrap();
        });
    }

    pub fn record(&self, key: &str) -> Option<Item> {
        self.runtime.block_on(async {
            self.dynamodb
                .get_item()
                .table_name(&self.table)
                .key("FileName", AttributeValue::S(key.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
        })
    }

    /// Every record of the table.
    pub fn records(&self) -> Vec<Item> {
        self.runtime.block_on(async {
            self.dynamodb
                .scan()
                .table_name(&self.table)
                .send()
                .await
                .unwrap()
                .items
                .unwrap_or_default()
        })
    }

    /// Waits until the record of `key` has `status`.
    pub fn wait_status(&self, key: &str, status: &str, timeout: Duration) -> Item {
        self.wait_until(key, timeout, |record| s(record, "Status") == status)
    }

    /// Waits until the record of `key` satisfies `done`.
    pub fn wait_until(&self, key: &str, timeout: Duration, done: impl Fn(&Item) -> bool) -> Item {
        let deadline = Instant::now() + timeout;
        loop {
            let record = self.record(key);
            if let Some(record) = &record
                && done(record)
            {
                return record.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the record of {key:?} was not as expected within {timeout:?}; last: {record:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Keys under `prefix` in the output bucket.
    pub fn output_keys(&self, prefix: &str) -> Vec<String> {
        self.runtime.block_on(async {
            self.s3
                .list_objects_v2()
                .bucket(&self.output_bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect()
        })
    }

    /// Every key of the output bucket, all pages.
    pub fn all_output_keys(&self) -> Vec<String> {
        self.runtime.block_on(async {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let page = self
                    .s3
                    .list_objects_v2()
                    .bucket(&self.output_bucket)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .unwrap();
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_owned)),
                );
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated().unwrap_or(false) => {
                        token = Some(next.to_owned());
                    }
                    _ => return keys,
                }
            }
        })
    }

    /// This source's variants in the output bucket: under `variants/<key>/`, exactly one
    /// render folder deep (the variants of a source whose key continues with `/` are
    /// deeper).
    pub fn own_variants(&self, key: &str) -> BTreeSet<String> {
        let prefix = format!("variants/{key}/");
        self.output_keys(&prefix)
            .into_iter()
            .filter(|k| k[prefix.len()..].matches('/').count() == 1)
            .collect()
    }

    pub fn output(&self, key: &str) -> Object {
        self.runtime.block_on(async {
            let out = self
                .s3
                .get_object()
                .bucket(&self.output_bucket)
                .key(key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
            Object {
                checksum_crc32: out.checksum_crc32().map(str::to_owned),
                content_type: out.content_type().map(str::to_owned),
                cache_control: out.cache_control().map(str::to_owned),
                metadata: out.metadata().cloned().unwrap_or_default(),
                bytes: out.body.collect().await.unwrap().into_bytes().to_vec(),
            }
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.scratch);
            let _ = std::fs::remove_file(self.scratch.with_extension("toml"));
        }
    }
}

fn truncate_bucket(name: &str) -> String {
    let mut name = name.to_ascii_lowercase();
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// A string attribute (empty when absent).
/// The variants a record lists, as maps.
pub fn variants(record: &Item) -> Vec<Item> {
    match record.get("Variants") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::M(m) => m.clone(),
                other => panic!("a variant is not a map: {other:?}"),
            })
            .collect(),
        other => panic!("Variants is not a list: {other:?}"),
    }
}

/// The keys of the variants a record lists.
pub fn variant_keys(record: &Item) -> BTreeSet<String> {
    variants(record).iter().map(|v| s(v, "Key")).collect()
}

/// The key of the variant `name` a record lists.
pub fn variant_key(record: &Item, name: &str) -> String {
    variants(record)
        .iter()
        .find(|v| s(v, "Name") == name)
        .map(|v| s(v, "Key"))
        .unwrap_or_else(|| panic!("no variant {name} in {record:#?}"))
}

/// Whether `key` is `variants/<source>/<render id>/<file>`: a 12-hex-digit render id.
pub fn is_variant_key_of(key: &str, source: &str, file: &str) -> bool {
    key.strip_prefix(&format!("variants/{source}/"))
        .and_then(|rest| rest.strip_suffix(&format!("/{file}")))
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn s(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    }
}

/// A number attribute.
pub fn n(item: &Item, name: &str) -> f64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap(),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// The SDK configuration for the shared server: its endpoint, a region and test
/// credentials, rustls over ring. Loaded inside the runtime that will use the clients
/// (their connection pools live on it).
pub async fn sdk_config() -> aws_config::SdkConfig {
    ec2_service::aws::install_crypto_provider();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(lambda_forwarder::sdk_https_client())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(super::moto::moto().endpoint())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "e2e",
        ))
        .load()
        .await
}

//! The DynamoDB record of each source (one item, key `FileName` = the source key), written
//! only through condition expressions so that duplicates and late events are harmless.
//!
//! Lifecycle of one job's writes:
//!
//! 1. [`Records::claim`] sets `Status = PENDING` and `JobId` to the job, *if* the job's
//!    event is not older than the one recorded (by `SequencerKey` when both have a
//!    sequencer, else `EventTimeKey`) and is not the very event already recorded as
//!    finished. A refused claim means the job has nothing to do. The claim answers with the
//!    variants the record listed before ([`Previous`]).
//! 2. [`Records::complete`], [`Records::fail`] or [`Records::mark_deleted`] write the outcome
//!    *if* `JobId` is still this job's, so a job that lost its claim never overwrites the
//!    newer one's record. A landed write answers with the variants the record listed just
//!    before it, which the writer then removes: variant keys are immutable (they carry a
//!    render id), so the record always points at one complete set and removing the one it
//!    replaced never touches anything another job published.
//!
//! Operator jobs (reprocess, reconcile) claim unconditionally, except over a DELETED
//! record (see [`Records::claim`]), and leave the event ordering attributes alone, so a
//! later event is still compared with the last real one.
//!
//! ETags are written in one form, without the quotes HTTP puts around them.
//!
//! Besides the documented attributes, records carry `JobId`, `EventId`, `EventName`,
//! `EventTime`, `SequencerKey`, `EventTimeKey`, `Origin`, `Frames`, `HasAlpha`,
//! `ConvertedToSrgb` and `IccDescription`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use pipeline_contract::JobAction;

use crate::aws::s3::SourceHead;
use crate::aws::{FailureKind, SdkFailure, classify};
use crate::pipeline::Metadata;
use crate::spool::job::{Job, event_time_key, sequencer_key};

pub const STATUS_PENDING: &str = "PENDING";
pub const STATUS_DONE: &str = "DONE";
pub const STATUS_FAILED: &str = "FAILED";
pub const STATUS_DELETED: &str = "DELETED";

/// The key of the item that holds the reconcile lease in fleet mode (one box sweeps at a
/// time). No S3 key looks like it, and it has no `Owner`, so no listing shows it.
pub const RECONCILE_LEASE_KEY: &str = "ec2-service:lease:reconcile";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a DynamoDB call failed.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB {operation} failed: {failure}")]
pub struct RecordError {
    pub operation: &'static str,
    pub failure: SdkFailure,
}

impl RecordError {
    /// Whether waiting may help (throttling, unavailability). Anything else (access
    /// denied, a missing table, a validation error) needs an operator.
    pub fn is_transient(&self) -> bool {
        self.failure.kind.is_transient()
    }

    /// The stable code a FAILED record (or a log line) carries.
    pub fn code(&self) -> &'static str {
        match self.failure.kind {
            FailureKind::Throttled => "dynamodb-throttled",
            FailureKind::Unavailable => "dynamodb-unavailable",
            FailureKind::Denied => "dynamodb-access-denied",
            FailureKind::NotFound => "table-not-found",
            FailureKind::ConditionFailed | FailureKind::Rejected => "dynamodb-rejected",
        }
    }
}

/// What the record held before a write: its status and the keys of the variants it listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Previous {
    pub status: Option<String>,
    pub variant_keys: Vec<String>,
}

impl Previous {
    fn of(item: Option<&HashMap<String, AttributeValue>>) -> Previous {
        let Some(item) = item else {
            return Previous::default();
        };
        let status = match item.get("Status") {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let variant_keys = match item.get("Variants") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .filter_map(|v| match v {
                    AttributeValue::M(m) => match m.get("Key") {
                        Some(AttributeValue::S(key)) => Some(key.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Previous {
            status,
            variant_keys,
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The record is now this job's; it held `Previous` before.
    Claimed(Previous),
    /// The record holds a newer event, or this very event already finished, or (for an
    /// operator job) it is DELETED: nothing to do. Carries the record's status and event
    /// when DynamoDB returned them.
    Superseded {
        status: Option<String>,
        event: Option<String>,
    },
}

/// Whether an outcome write landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// It did; the record held `Previous` just before.
    Yes(Previous),
    /// Another job claimed the record meanwhile; this outcome was not written.
    LostClaim,
}

/// One variant as the record lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantRecord {
    pub name: String,
    pub key: String,
    /// Where a browser fetches it (`[aws] public_base_url` + key), when configured.
    pub url: Option<String>,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub format: &'static str,
}

/// Everything a DONE record says.
#[derive(Debug)]
pub struct Done<'a> {
    pub head: &'a SourceHead,
    pub metadata: &'a Metadata,
    pub variants: &'a [VariantRecord],
    /// The render that made the variants (part of their keys).
    pub render_id: &'a str,
    pub recipe_version: &'a str,
    pub attempts: u32,
    pub processing_ms: u64,
}

/// What reconcile needs to know of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub status: Option<String>,
    pub recipe_version: Option<String>,
    pub etag: Option<String>,
}

/// The table of records.
#[derive(Debug, Clone)]
pub struct Records {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// An update with placeholders for every name and value (many attribute names, `Status`
/// and `Format` among them, are reserved words in expressions).
#[derive(Debug, Default)]
struct Update {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    remove: Vec<String>,
}

impl Update {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let name = self.name(attribute);
        let value = self.value(value);
        self.set.push(format!("{name} = {value}"));
        self
    }

    fn set_or_remove(&mut self, attribute: &str, value: Option<AttributeValue>) -> &mut Self {
        match value {
            Some(value) => self.set(attribute, value),
            None => self.remove(attribute),
        }
    }

    fn remove(&mut self, attribute: &str) -> &mut Self {
        let name = self.name(attribute);
        self.remove.push(name);
        self
    }

    fn expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl std::fmt::Display + Copy) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn map(pairs: Vec<(&str, AttributeValue)>) -> AttributeValue {
    AttributeValue::M(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

impl Records {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Records {
        Records {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn sdk<E>(
        operation: &'static str,
    ) -> impl FnOnce(
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> RecordError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        move |error| RecordError {
            operation,
            failure: classify(&error),
        }
    }

    /// One conditional UpdateItem. `Ok(Ok(old))`: it landed, the item held `old` before;
    /// `Ok(Err(current))`: the condition refused it, the item is `current`.
    async fn update(
        &self,
        key: &str,
        update: Update,
        condition: Option<String>,
    ) -> Result<Result<Previous, Option<HashMap<String, AttributeValue>>>, RecordError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("FileName", s(key))
            .update_expression(update.expression())
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Ok(Previous::of(output.attributes()))),
            Err(error) => {
                if let Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(refused)) =
                    error.as_service_error()
                {
                    return Ok(Err(refused.item().cloned()));
                }
                Err(Self::sdk("UpdateItem")(error))
            }
        }
    }

    /// Makes the record this job's (see the module docs for the rule). An operator job
    /// does not claim a DELETED record unless `over_deleted` (its source was found again):
    /// reprocessing a deleted source must leave its record DELETED.
    pub async fn claim(&self, job: &Job, over_deleted: bool) -> Result<Claim, RecordError> {
        let request = &job.request;
        let mut update = Update::default();
        update
            .set("Bucket", s(&request.bucket))
            .set("Status", s(STATUS_PENDING))
            .set("JobId", s(&job.id))
            .set("Attempts", n(job.attempts))
            .set("ReceivedAt", s(&job.accepted_at))
            .set("Origin", s(job.origin.name()))
            .remove("ErrorCode")
            .remove("ErrorMessage")
            // A stub written by the upload API expires unless a job claims it.
            .remove("ExpiresAt");
        let condition = match job.event_id() {
            None if over_deleted => None,
            None => {
                let status = update.name("Status");
                let deleted = update.value(s(STATUS_DELETED));
                Some(format!(
                    "attribute_not_exists({status}) OR {status} <> {deleted}"
                ))
            }
            Some(event_id) => {
                let sequencer = request.sequencer.as_deref().map(sequencer_key);
                let time = request.event_time.as_deref().and_then(event_time_key);
                update
                    .set("EventId", s(&event_id))
                    .set("EventName", s(&request.event_name))
                    .set_or_remove("Sequencer", request.sequencer.clone().map(s))
                    .set_or_remove("SequencerKey", sequencer.clone().map(s))
                    .set_or_remove("EventTime", request.event_time.clone().map(s))
                    .set_or_remove("EventTimeKey", time.clone().map(s));
                if let Some(etag) = &request.etag {
                    update.set("ETag", s(unquoted(etag)));
                }
                if let Some(version) = &request.version_id {
                    update.set("VersionId", s(version));
                }
                Some(claim_condition(&mut update, &event_id, sequencer, time))
            }
        };
        match self.update(&request.key, update, condition).await? {
            Ok(previous) => Ok(Claim::Claimed(previous)),
            Err(item) => {
                let text = |name: &str| match item.as_ref().and_then(|i| i.get(name)) {
                    Some(AttributeValue::S(v)) => Some(v.clone()),
                    _ => None,
                };
                Ok(Claim::Superseded {
                    status: text("Status"),
                    event: text("EventName").map(|name| {
                        match text("Sequencer").or_else(|| text("EventTime")) {
                            Some(order) => format!("{name} {order}"),
                            None => name,
                        }
                    }),
                })
            }
        }
    }

    async fn finish(&self, job: &Job, mut update: Update) -> Result<Written, RecordError> {
        let name = update.name("JobId");
        let value = update.value(s(&job.id));
        let condition = format!("{name} = {value}");
        match self
            .update(&job.request.key, update, Some(condition))
            .await?
        {
            Ok(previous) => Ok(Written::Yes(previous)),
            Err(_) => Ok(Written::LostClaim),
        }
    }

    /// Writes the DONE record of a rendered source.
    pub async fn complete(&self, job: &Job, done: &Done<'_>) -> Result<Written, RecordError> {
        let m = done.metadata;
        let camera = &m.camera;
        let mut exif = Vec::new();
        let text_fields = [
            ("Make", &camera.make),
            ("Model", &camera.model),
            ("Lens", &camera.lens),
            ("DateTaken", &camera.date_taken),
            ("ExposureTime", &camera.exposure_time),
        ];
        for (name, value) in text_fields {
            if let Some(value) = value {
                exif.push((name, s(value)));
            }
        }
        if let Some(f) = camera.f_number {
            exif.push(("FNumber", n(f)));
        }
        if let Some(iso) = camera.iso {
            exif.push(("Iso", n(iso)));
        }
        if let Some(mm) = camera.focal_length_mm {
            exif.push(("FocalLengthMm", n(mm)));
        }
        let gps = m.gps.as_ref().map(|g| {
            let mut pairs = vec![("Latitude", n(g.latitude)), ("Longitude", n(g.longitude))];
            if let Some(alt) = g.altitude_m {
                pairs.push(("AltitudeM", n(alt)));
            }
            map(pairs)
        });
        let variants = AttributeValue::L(
            done.variants
                .iter()
                .map(|v| {
                    let mut pairs = vec![
                        ("Name", s(&v.name)),
                        ("Key", s(&v.key)),
                        ("Width", n(v.width)),
                        ("Height", n(v.height)),
                        ("Bytes", n(v.bytes)),
                        ("Format", s(v.format)),
                    ];
                    if let Some(url) = &v.url {
                        pairs.push(("Url", s(url)));
                    }
                    map(pairs)
                })
                .collect(),
        );
        let mut update = Update::default();
        update
            .set("Status", s(STATUS_DONE))
            .set("Bucket", s(&job.request.bucket))
            .set_or_remove("ETag", done.head.etag.as_deref().map(|e| s(unquoted(e))))
            .set_or_remove("VersionId", done.head.version_id.clone().map(s))
            .set("SizeBytes", n(done.head.size))
            .set("Format", s(m.format.name()))
            .set("Width", n(m.width))
            .set("Height", n(m.height))
            .set("Orientation", n(m.orientation))
            .set("Frames", n(m.frames))
            .set("HasAlpha", AttributeValue::Bool(m.has_alpha))
            .set("ConvertedToSrgb", AttributeValue::Bool(m.converted_to_srgb))
            .set_or_remove("IccDescription", m.icc_description.clone().map(s))
            .set("Exif", map(exif))
            .set_or_remove("Gps", gps)
            .set("Sha256", s(&m.sha256))
            .set("PerceptualHash", s(&m.perceptual_hash))
            .set("BlurHash", s(&m.blur_hash))
            .set("DominantColor", s(&m.dominant_color))
            .set("Variants", variants)
            .set("RenderId", s(done.render_id))
            .set("RecipeVersion", s(done.recipe_version))
            .set("ProcessedAt", s(crate::spool::job::now_rfc3339()))
            .set("ProcessingMs", n(done.processing_ms))
            .set("Attempts", n(done.attempts))
            .remove("ErrorCode")
            .remove("ErrorMessage");
        self.finish(job, update).await
    }

    /// Writes the FAILED record of a job.
    pub async fn fail(
        &self,
        job: &Job,
        code: &str,
        message: &str,
        recipe_version: &str,
        processing_ms: u64,
    ) -> Result<Written, RecordError> {
        let mut update = Update::default();
        update
            .set("Status", s(STATUS_FAILED))
            .set("ErrorCode", s(code))
            .set("ErrorMessage", s(truncate(message, 2_000)))
            .set("RecipeVersion", s(recipe_version))
            .set("ProcessedAt", s(crate::spool::job::now_rfc3339()))
            .set("ProcessingMs", n(processing_ms))
            .set("Attempts", n(job.attempts));
        self.finish(job, update).await
    }

    /// Marks a source's record DELETED (its variants are gone).
    pub async fn mark_deleted(
        &self,
        job: &Job,
        processing_ms: u64,
    ) -> Result<Written, RecordError> {
        debug_assert_eq!(job.request.action, JobAction::Delete);
        let mut update = Update::default();
        update
            .set("Status", s(STATUS_DELETED))
            .set("Variants", AttributeValue::L(Vec::new()))
            .set("ProcessedAt", s(crate::spool::job::now_rfc3339()))
            .set("ProcessingMs", n(processing_ms))
            .set("Attempts", n(job.attempts))
            .remove("ErrorCode")
            .remove("ErrorMessage");
        self.finish(job, update).await
    }

    /// The status, recipe version and ETag of the records of `keys` (absent keys have no
    /// record), read in batches of 100.
    pub async fn summaries(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Summary>, RecordError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| HashMap::from([("FileName".to_owned(), s(k))]))
                .collect();
            let mut rounds = 0;
            while !pending.is_empty() {
                rounds += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .projection_expression("#k, #s, #r, #e")
                    .expression_attribute_names("#k", "FileName")
                    .expression_attribute_names("#s", "Status")
                    .expression_attribute_names("#r", "RecipeVersion")
                    .expression_attribute_names("#e", "ETag")
                    .build()
                    .map_err(|e| RecordError {
                        operation: "BatchGetItem",
                        failure: SdkFailure {
                            kind: FailureKind::Rejected,
                            status: None,
                            code: None,
                            message: e.to_string(),
                        },
                    })?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(Self::sdk("BatchGetItem"))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let text = |name: &str| match item.get(name) {
                        Some(AttributeValue::S(v)) => Some(v.clone()),
                        _ => None,
                    };
                    if let Some(key) = text("FileName") {
                        found.insert(
                            key,
                            Summary {
                                status: text("Status"),
                                recipe_version: text("RecipeVersion"),
                                etag: text("ETag").map(|e| unquoted(&e).to_owned()),
                            },
                        );
                    }
                }
                if let Some(left) = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .filter(|k| !k.is_empty())
                {
                    if rounds > 20 {
                        return Err(RecordError {
                            operation: "BatchGetItem",
                            failure: SdkFailure {
                                kind: FailureKind::Throttled,
                                status: None,
                                code: None,
                                message: format!(
                                    "{} keys still unprocessed after {rounds} rounds",
                                    left.len()
                                ),
                            },
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(50 * rounds)).await;
                    pending = left;
                }
            }
        }
        Ok(found)
    }

    /// The whole record of a source, if any (for the operator and the tests).
    pub async fn get(
        &self,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, RecordError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("FileName", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(Self::sdk("GetItem"))?;
        Ok(output.item)
    }

    /// Takes (or renews) the reconcile lease for `holder` until `ttl` from now, unless
    /// another holder's lease has not expired. The lease is one item of the table, under a
    /// key no source has ([`RECONCILE_LEASE_KEY`]).
    pub async fn take_lease(&self, holder: &str, ttl: Duration) -> Result<bool, RecordError> {
        let now = now_ms();
        let mut update = Update::default();
        update
            .set("Holder", s(holder))
            .set("LeaseUntilMs", n(now + ttl.as_millis() as u64))
            .set("Status", s("LEASE"));
        let file_name = update.name("FileName");
        let holder_name = update.name("Holder");
        let until = update.name("LeaseUntilMs");
        let me = update.value(s(holder));
        let now_value = update.value(n(now));
        let condition = format!(
            "attribute_not_exists({file_name}) OR {holder_name} = {me} OR {until} < {now_value}"
        );
        Ok(self
            .update(RECONCILE_LEASE_KEY, update, Some(condition))
            .await?
            .is_ok())
    }

    /// Gives the lease back, if `holder` still has it.
    pub async fn drop_lease(&self, holder: &str) -> Result<(), RecordError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("FileName", s(RECONCILE_LEASE_KEY))
            .condition_expression("#h = :h")
            .expression_attribute_names("#h", "Holder")
            .expression_attribute_values(":h", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(Self::sdk("DeleteItem")(error)),
            },
        }
    }

    /// Whether the table answers (DescribeTable).
    pub async fn check(&self) -> Result<(), RecordError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(Self::sdk("DescribeTable"))?;
        Ok(())
    }
}

/// The claim condition of an event job (see the module docs).
fn claim_condition(
    update: &mut Update,
    event_id: &str,
    sequencer: Option<String>,
    time: Option<String>,
) -> String {
    let file_name = update.name("FileName");
    let event = update.name("EventId");
    let status = update.name("Status");
    let seq_name = update.name("SequencerKey");
    let time_name = update.name("EventTimeKey");
    let eid = update.value(s(event_id));
    let pending = update.value(s(STATUS_PENDING));
    let sequencer = sequencer.map(|v| update.value(s(v)));
    let time = time.map(|v| update.value(s(v)));
    let time_not_older =
        time.map(|t| format!("(attribute_not_exists({time_name}) OR {time_name} <= {t})"));
    let not_older = match (sequencer, time_not_older) {
        (Some(seq), Some(time)) => Some(format!(
            "({seq_name} <= {seq} OR (attribute_not_exists({seq_name}) AND {time}))"
        )),
        (Some(seq), None) => Some(format!(
            "({seq_name} <= {seq} OR attribute_not_exists({seq_name}))"
        )),
        (None, Some(time)) => Some(time),
        (None, None) => None,
    };
    let another_event = format!("(attribute_not_exists({event}) OR {event} <> {eid})");
    let newer = match not_older {
        Some(not_older) => format!("({another_event} AND {not_older})"),
        None => another_event,
    };
    format!(
        "attribute_not_exists({file_name}) OR ({event} = {eid} AND {status} = {pending}) OR {newer}"
    )
}

/// An ETag without the double quotes HTTP puts around it (`"abc"` and `abc` are one ETag).
pub fn unquoted(etag: &str) -> &str {
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_condition_compares_sequencers_then_times() {
        let mut update = Update::default();
        let c = claim_condition(&mut update, "e-1", Some("0A".into()), Some("t".into()));
        assert_eq!(
            c,
            "attribute_not_exists(#FileName) OR (#EventId = :v0 AND #Status = :v1) OR \
             ((attribute_not_exists(#EventId) OR #EventId <> :v0) AND \
             (#SequencerKey <= :v2 OR (attribute_not_exists(#SequencerKey) AND \
             (attribute_not_exists(#EventTimeKey) OR #EventTimeKey <= :v3))))"
        );
        let mut update = Update::default();
        let c = claim_condition(&mut update, "e-1", None, None);
        assert!(
            c.ends_with("OR (attribute_not_exists(#EventId) OR #EventId <> :v0)"),
            "{c}"
        );
    }

    #[test]
    fn updates_use_placeholders_for_every_name() {
        let mut u = Update::default();
        u.set("Status", s("DONE"))
            .set_or_remove("Gps", None)
            .remove("ErrorCode");
        assert_eq!(u.expression(), "SET #Status = :v0 REMOVE #Gps, #ErrorCode");
        assert_eq!(u.names["#Status"], "Status");
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(unquoted("\"abc-2\""), "abc-2");
        assert_eq!(unquoted("abc"), "abc");
        assert_eq!(unquoted("\""), "\"");
    }
}

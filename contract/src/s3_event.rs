//! Tolerant parsing of S3 event notifications, as Lambda hands them to the forwarder or
//! as the daemon reads them from SQS.
//!
//! Three shapes arrive: a direct S3 event notification (`{"Records": [{"eventSource":
//! "aws:s3", "s3": …}]}`), an SQS event whose message bodies are S3 notifications
//! (`{"Records": [{"eventSource": "aws:sqs", "messageId": …, "body": "…"}]}`), and S3's
//! `s3:TestEvent`. Our own types are deliberately lax: every field we do not need may be
//! absent, and the optional ones we do use (`size`, `eTag`, `versionId`, `sequencer`,
//! `eventTime`) may be absent, `null` or of an odd type without failing the record, because
//! local emulators (moto) omit them. Only a record's event name, bucket and key are required.
//!
//! Parsing stays per record and per message, so one bad record cannot hide the good ones.
//! This module decides nothing about sending: the forwarder and the daemon's SQS intake
//! do.

use std::borrow::Cow;

use crate::{JobAction, JobRequest};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::filter::{Filter, Skip};

/// The kind of invocation, with its payload split into records or messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A direct S3 notification (asynchronous invocation): its records.
    S3(Vec<Value>),
    /// An SQS batch: its messages.
    Sqs(Vec<SqsMessage>),
    /// S3's `s3:TestEvent`, sent once when a notification is configured.
    TestEvent,
}

/// One SQS message of a batch, as far as the forwarder needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct SqsMessage {
    /// The id to name in `batchItemFailures`.
    #[serde(rename = "messageId", default, deserialize_with = "lenient_string")]
    pub message_id: Option<String>,
    /// The body: an S3 notification as JSON text.
    #[serde(default, deserialize_with = "lenient_string")]
    pub body: Option<String>,
}

/// What one S3 notification (a direct event or one SQS body) holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// Event records, each to be read with [`read_record`].
    Records(Vec<Value>),
    /// The `s3:TestEvent`: nothing to do.
    TestEvent,
}

/// A payload or message body that is not one of the shapes we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

/// Sorts the invocation payload into one of the three shapes.
pub fn classify(payload: Value) -> Result<Incoming, EventError> {
    let Value::Object(mut map) = payload else {
        return Err(EventError(format!(
            "the payload is a JSON {}, not an object",
            json_type(&payload)
        )));
    };
    match map.remove("Records") {
        Some(Value::Array(records)) => {
            let is_sqs = records
                .first()
                .and_then(|record| record.get("eventSource"))
                .and_then(Value::as_str)
                == Some("aws:sqs");
            if is_sqs {
                // A record that is not even an object becomes a message without id and body,
                // which fails the batch rather than vanishing.
                let messages = records
                    .into_iter()
                    .map(|record| SqsMessage::deserialize(record).unwrap_or_default())
                    .collect();
                Ok(Incoming::Sqs(messages))
            } else {
                Ok(Incoming::S3(records))
            }
        }
        Some(other) => Err(EventError(format!(
            "\"Records\" is a JSON {}, not a list",
            json_type(&other)
        ))),
        None if is_test_event(&map) => Ok(Incoming::TestEvent),
        None => Err(EventError(
            "neither an S3 or SQS event (no \"Records\") nor an s3:TestEvent".into(),
        )),
    }
}

/// Reads one SQS message body: an S3 notification, the test event, or either of them
/// wrapped in an SNS notification envelope (S3 → SNS → SQS).
pub fn read_sqs_body(body: &str) -> Result<Notification, EventError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|error| EventError(format!("the message body is not JSON ({error})")))?;
    let is_sns = value.get("Type").and_then(Value::as_str) == Some("Notification");
    match (is_sns, value.get("Message").and_then(Value::as_str)) {
        (true, Some(message)) => {
            let inner: Value = serde_json::from_str(message).map_err(|error| {
                EventError(format!(
                    "the SNS message inside the body is not JSON ({error})"
                ))
            })?;
            read_notification(inner)
        }
        _ => read_notification(value),
    }
}

fn read_notification(value: Value) -> Result<Notification, EventError> {
    match value {
        Value::Object(mut map) => match map.remove("Records") {
            Some(Value::Array(records)) => Ok(Notification::Records(records)),
            Some(other) => Err(EventError(format!(
                "\"Records\" is a JSON {}, not a list",
                json_type(&other)
            ))),
            None if is_test_event(&map) => Ok(Notification::TestEvent),
            None => Err(EventError(
                "the message is neither an S3 event nor an s3:TestEvent".into(),
            )),
        },
        other => Err(EventError(format!(
            "the message is a JSON {}, not an object",
            json_type(&other)
        ))),
    }
}

fn is_test_event(map: &serde_json::Map<String, Value>) -> bool {
    map.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// What became of one S3 event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Forward this job.
    Job(JobRequest),
    /// Deliberately not forwarded (filtered out, or an event type we do not handle).
    Skipped {
        /// The decoded key, when there was one.
        key: Option<String>,
        /// Why.
        reason: Skip,
    },
    /// The record cannot be read: the invocation or message must fail so that the event is
    /// retried and, failing that, kept by the failure destination.
    Invalid(String),
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName", default, deserialize_with = "lenient_string")]
    event_name: Option<String>,
    #[serde(rename = "eventTime", default, deserialize_with = "lenient_string")]
    event_time: Option<String>,
    #[serde(default)]
    s3: Option<Entity>,
}

#[derive(Debug, Deserialize)]
struct Entity {
    #[serde(default)]
    bucket: Option<Bucket>,
    #[serde(default)]
    object: Option<Object>,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    #[serde(default, deserialize_with = "lenient_string")]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Object {
    #[serde(default, deserialize_with = "lenient_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    size: Option<u64>,
    #[serde(
        rename = "eTag",
        alias = "etag",
        default,
        deserialize_with = "lenient_string"
    )]
    etag: Option<String>,
    #[serde(rename = "versionId", default, deserialize_with = "lenient_string")]
    version_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    sequencer: Option<String>,
}

/// A non-empty string, or `None` for anything else (absent, `null`, a number, …).
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) if !text.is_empty() => Some(text),
        _ => None,
    })
}

/// A non-negative integer given as a number or as decimal text, or `None` for anything else.
fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    })
}

/// The job action for an S3 event name (with or without the `s3:` prefix), or `None` for
/// event types the pipeline does not act on (restores, tagging, ACLs, replication, …).
pub fn action_for(event_name: &str) -> Option<JobAction> {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    if name.starts_with("ObjectCreated:") {
        Some(JobAction::Process)
    } else if name.starts_with("ObjectRemoved:")
        || name == "LifecycleExpiration:Delete"
        || name == "LifecycleExpiration:DeleteMarkerCreated"
    {
        Some(JobAction::Delete)
    } else {
        None
    }
}

/// Decodes a key as S3 writes it in events (`application/x-www-form-urlencoded`): `+` is a
/// space, then `%XX` escapes are bytes of UTF-8. A literal `+` arrives as `%2B`. Malformed
/// escapes (`%`, `%zz`) are kept as they are; bytes that are not UTF-8 are an error.
pub fn decode_key(raw: &str) -> Result<String, EventError> {
    let spaced: Cow<'_, str> = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| EventError(format!("key {raw:?} does not decode to UTF-8")))
}

/// Turns one S3 event record into a job, a skip or an invalid record.
pub fn read_record(record: Value, filter: &Filter) -> RecordOutcome {
    let record = match Record::deserialize(record) {
        Ok(record) => record,
        Err(error) => return RecordOutcome::Invalid(format!("not an S3 event record ({error})")),
    };
    let Some(event_name) = record.event_name else {
        return RecordOutcome::Invalid("record has no eventName".into());
    };
    let event_name = event_name
        .strip_prefix("s3:")
        .map(str::to_owned)
        .unwrap_or(event_name);
    let Some(action) = action_for(&event_name) else {
        return RecordOutcome::Skipped {
            key: None,
            reason: Skip::UnsupportedEvent(event_name),
        };
    };
    let (bucket, object) = match record.s3 {
        Some(Entity {
            bucket: Some(Bucket { name: Some(bucket) }),
            object: Some(object),
        }) => (bucket, object),
        _ => return RecordOutcome::Invalid("record has no s3.bucket.name or s3.object".into()),
    };
    let Some(raw_key) = object.key else {
        return RecordOutcome::Invalid(format!("record in bucket {bucket:?} has no object key"));
    };
    let key = match decode_key(&raw_key) {
        Ok(key) if !key.is_empty() => key,
        Ok(_) => return RecordOutcome::Invalid(format!("key {raw_key:?} decodes to nothing")),
        Err(error) => return RecordOutcome::Invalid(error.0),
    };
    let job = JobRequest {
        action,
        bucket,
        key,
        size: object.size,
        etag: object.etag,
        version_id: object.version_id,
        sequencer: object.sequencer,
        event_time: record.event_time,
        event_name,
    };
    match filter.check(&job) {
        Ok(Ok(())) => RecordOutcome::Job(job),
        Ok(Err(reason)) => RecordOutcome::Skipped {
            key: Some(job.key),
            reason,
        },
        Err(refusal) => RecordOutcome::Invalid(format!(
            "s3://{}/{}: {refusal}",
            job.bucket,
            crate::escape_key(&job.key)
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_form_url_decoded() {
        let cases = [
            ("HappyFace.jpg", "HappyFace.jpg"),
            ("red+flower.jpg", "red flower.jpg"),
            ("a%2Bb.jpg", "a+b.jpg"),
            ("a%2B%2Bb+c.jpg", "a++b c.jpg"),
            ("uploads%2F2024%2Fa.jpg", "uploads/2024/a.jpg"),
            ("uploads/2024/a.jpg", "uploads/2024/a.jpg"),
            ("caf%C3%A9+%E6%97%A5%E6%9C%AC.jpg", "café 日本.jpg"),
            ("%F0%9F%93%B7.png", "📷.png"),
            ("100%25.jpg", "100%.jpg"),
            ("odd%zz%.jpg", "odd%zz%.jpg"),
            ("%28copy%29+%231.jpg", "(copy) #1.jpg"),
            ("already space.jpg", "already space.jpg"),
        ];
        for (raw, decoded) in cases {
            assert_eq!(decode_key(raw).unwrap(), decoded, "{raw}");
        }
        assert!(decode_key("bad%FF.jpg").is_err());
    }

    #[test]
    fn event_names_map_to_actions() {
        for name in [
            "ObjectCreated:Put",
            "ObjectCreated:Post",
            "ObjectCreated:Copy",
            "ObjectCreated:CompleteMultipartUpload",
            "s3:ObjectCreated:Put",
        ] {
            assert_eq!(action_for(name), Some(JobAction::Process), "{name}");
        }
        for name in [
            "ObjectRemoved:Delete",
            "ObjectRemoved:DeleteMarkerCreated",
            "LifecycleExpiration:Delete",
            "LifecycleExpiration:DeleteMarkerCreated",
        ] {
            assert_eq!(action_for(name), Some(JobAction::Delete), "{name}");
        }
        for name in [
            "ObjectRestore:Completed",
            "ObjectTagging:Put",
            "ObjectAcl:Put",
            "LifecycleTransition",
            "Replication:OperationFailedReplication",
            "",
        ] {
            assert_eq!(action_for(name), None, "{name}");
        }
    }

    #[test]
    fn payloads_are_classified() {
        assert_eq!(
            classify(json!({"Records": [{"eventSource": "aws:s3"}]})),
            Ok(Incoming::S3(vec![json!({"eventSource": "aws:s3"})]))
        );
        assert_eq!(classify(json!({"Records": []})), Ok(Incoming::S3(vec![])));
        assert_eq!(
            classify(json!({"Records": [
                {"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"},
                {"eventSource": "aws:sqs", "body": 5},
                7
            ]})),
            Ok(Incoming::Sqs(vec![
                SqsMessage {
                    message_id: Some("m1".into()),
                    body: Some("{}".into())
                },
                SqsMessage::default(),
                SqsMessage::default(),
            ]))
        );
        assert_eq!(
            classify(json!({"Service": "Amazon S3", "Event": "s3:TestEvent"})),
            Ok(Incoming::TestEvent)
        );
        assert!(classify(json!({"hello": "world"})).is_err());
        assert!(classify(json!({"Records": {}})).is_err());
        assert!(classify(json!([1, 2])).is_err());
        assert!(classify(Value::Null).is_err());
    }

    #[test]
    fn sqs_bodies_are_read_plain_or_inside_sns() {
        let s3 = json!({"Records": [{"eventName": "ObjectCreated:Put"}]});
        assert_eq!(
            read_sqs_body(&s3.to_string()),
            Ok(Notification::Records(vec![
                json!({"eventName": "ObjectCreated:Put"})
            ]))
        );
        let sns = json!({"Type": "Notification", "Message": s3.to_string()});
        assert_eq!(
            read_sqs_body(&sns.to_string()),
            read_sqs_body(&s3.to_string())
        );
        assert_eq!(
            read_sqs_body(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#),
            Ok(Notification::TestEvent)
        );
        for bad in ["", "not json", "[]", "{}", r#"{"Records": 3}"#, "null"] {
            assert!(read_sqs_body(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_tolerate_missing_and_odd_optional_fields() {
        let filter = Filter::new(
            crate::Rules {
                source_bucket: "b".into(),
                output_bucket: "out".into(),
                variant_prefix: "variants/".into(),
            },
            "",
            Vec::new(),
        );
        let record = json!({
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {
                "key": "a.jpg", "size": "42", "eTag": null, "versionId": 3, "sequencer": ""
            }}
        });
        assert_eq!(
            read_record(record, &filter),
            RecordOutcome::Job(JobRequest {
                action: JobAction::Process,
                bucket: "b".into(),
                key: "a.jpg".into(),
                size: Some(42),
                etag: None,
                version_id: None,
                sequencer: None,
                event_time: None,
                event_name: "ObjectCreated:Put".into(),
            })
        );
    }

    #[test]
    fn records_without_the_essentials_are_invalid() {
        let filter = Filter::new(
            crate::Rules {
                source_bucket: "b".into(),
                output_bucket: "out".into(),
                variant_prefix: "variants/".into(),
            },
            "",
            Vec::new(),
        );
        for record in [
            json!(1),
            json!({}),
            json!({"eventName": "ObjectCreated:Put"}),
            json!({"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "a"}}}),
            json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}),
            json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}),
            json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "%FF"}}}),
            json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ""}, "object": {"key": "a"}}}),
        ] {
            assert!(
                matches!(
                    read_record(record.clone(), &filter),
                    RecordOutcome::Invalid(_)
                ),
                "{record}"
            );
        }
        // Another bucket is a misrouted notification: invalid, so that it is not lost.
        let record = |bucket: &str, key: &str| {
            json!({"eventName": "ObjectCreated:Put",
                   "s3": {"bucket": {"name": bucket}, "object": {"key": key}}})
        };
        assert!(matches!(
            read_record(record("elsewhere", "a.jpg"), &filter),
            RecordOutcome::Invalid(why) if why.contains("not the source bucket")
        ));
        // The daemon's own outputs are skipped; a key with a TAB is an ordinary job.
        assert_eq!(
            read_record(record("out", "variants/a.jpg/r1/thumb.webp"), &filter),
            RecordOutcome::Skipped {
                key: Some("variants/a.jpg/r1/thumb.webp".into()),
                reason: Skip::OwnOutput
            }
        );
        assert!(matches!(
            read_record(record("b", "uploads/a%09b.jpg"), &filter),
            RecordOutcome::Job(job) if job.key == "uploads/a\tb.jpg"
        ));
        // Event types we do not act on are skipped, not invalid, even when incomplete.
        assert_eq!(
            read_record(json!({"eventName": "ObjectTagging:Put"}), &filter),
            RecordOutcome::Skipped {
                key: None,
                reason: Skip::UnsupportedEvent("ObjectTagging:Put".into())
            }
        );
    }
}

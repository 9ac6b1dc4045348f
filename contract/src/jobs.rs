//! The JSON bodies of `POST /v1/jobs`: the request, the 2xx answer and the error body.
//!
//! Field names are camelCase on the wire, like the S3 event they come from (`eTag`,
//! `versionId`, `eventTime`, `eventName`). Optional fields are left out when absent and
//! accepted as absent or `null`; unknown fields are ignored so that either side can add a
//! field without breaking the other.

use serde::{Deserialize, Serialize};

/// What the daemon should do with a source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    /// The source was created or overwritten (`ObjectCreated:*`): render its variants and
    /// write its record.
    Process,
    /// The source was removed (`ObjectRemoved:*`): remove its variants and mark its record
    /// deleted.
    Delete,
}

/// One job: one S3 event record for one source object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRequest {
    /// What to do.
    pub action: JobAction,
    /// Source bucket name.
    pub bucket: String,
    /// Source key, already URL-decoded (`red flower.jpg`, never `red+flower.jpg`).
    pub key: String,
    /// Object size in bytes as the event reported it (absent for deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The object's ETag as the event reported it (absent for deletes and some emulators).
    #[serde(rename = "eTag", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Object version, when the bucket is versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// S3's per-key ordering token (hex); compare with
    /// [`compare_sequencers`](crate::compare_sequencers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// When S3 finished the request, RFC 3339 exactly as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// The S3 event name without the `s3:` prefix, e.g. `ObjectCreated:Put`.
    pub event_name: String,
}

/// Body of `POST /v1/jobs`: every job of one forwarder invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobsRequest {
    /// The jobs, in the order of the event records.
    pub jobs: Vec<JobRequest>,
}

/// What the daemon did with one job of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerStatus {
    /// Stored durably: it will end as a record (done, failed or deleted).
    Accepted,
    /// The daemon already held this job (same object, same event): nothing stored again.
    Duplicate,
    /// Not taken: see the answer's `code` ([`Refusal`](crate::Refusal) codes, or
    /// `queue-full` and the like when the daemon cannot take it right now).
    Refused,
}

/// The daemon's answer for one job, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAnswer {
    /// The daemon's id for the job (absent when refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The source key the job is for (decoded).
    pub key: String,
    /// What was done.
    pub status: AnswerStatus,
    /// Why it was refused: a stable kebab-case code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it was refused, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl JobAnswer {
    /// Whether the sender may consider this job handled: accepted, a duplicate, or
    /// refused on purpose ([`Refusal::is_deliberate_skip`](crate::Refusal::is_deliberate_skip)).
    /// Anything else must be retried or end where failures are kept (a DLQ).
    pub fn is_handled(&self) -> bool {
        match self.status {
            AnswerStatus::Accepted | AnswerStatus::Duplicate => true,
            AnswerStatus::Refused => self
                .code
                .as_deref()
                .is_some_and(crate::Refusal::code_is_deliberate_skip),
        }
    }
}

/// Body of a 2xx answer to `POST /v1/jobs`: one answer per job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobAnswers {
    /// One entry per job of the request, in the same order.
    pub jobs: Vec<JobAnswer>,
}

/// A job an operator command sends through the SQS queue in fleet mode (reconcile): the
/// body of the message is `{"operatorJob": {...}}`, beside the S3 event notifications the
/// queue otherwise carries. The daemon that receives it renders the current object at
/// `key`, whatever its record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorJob {
    /// `reconcile` or `reprocess`.
    pub origin: String,
    pub bucket: String,
    pub key: String,
    #[serde(rename = "eTag", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The SQS body of an [`OperatorJob`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorMessage {
    pub operator_job: OperatorJob,
}

/// Body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable kebab-case code that callers may match on (`bad-signature`, `queue-full`, …).
    pub code: String,
    /// Human-readable message that is safe to show to the caller (no internals).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_job() -> JobRequest {
        JobRequest {
            action: JobAction::Process,
            bucket: "photos".into(),
            key: "uploads/red flower.jpg".into(),
            size: Some(1024),
            etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".into()),
            sequencer: Some("0055AED6DCD90281E5".into()),
            event_time: Some("2024-05-01T12:00:00.000Z".into()),
            event_name: "ObjectCreated:Put".into(),
        }
    }

    #[test]
    fn job_request_uses_the_documented_field_names() {
        let wire = serde_json::to_value(JobsRequest {
            jobs: vec![full_job()],
        })
        .unwrap();
        assert_eq!(
            wire,
            json!({"jobs": [{
                "action": "process",
                "bucket": "photos",
                "key": "uploads/red flower.jpg",
                "size": 1024,
                "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                "sequencer": "0055AED6DCD90281E5",
                "eventTime": "2024-05-01T12:00:00.000Z",
                "eventName": "ObjectCreated:Put"
            }]})
        );
    }

    #[test]
    fn optional_fields_are_omitted_and_accepted_as_absent_or_null() {
        let job = JobRequest {
            action: JobAction::Delete,
            bucket: "photos".into(),
            key: "a.jpg".into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: None,
            event_name: "ObjectRemoved:Delete".into(),
        };
        let wire = serde_json::to_value(&job).unwrap();
        assert_eq!(
            wire,
            json!({"action": "delete", "bucket": "photos", "key": "a.jpg",
                   "eventName": "ObjectRemoved:Delete"})
        );
        let from_nulls: JobRequest = serde_json::from_value(json!({
            "action": "delete", "bucket": "photos", "key": "a.jpg", "size": null,
            "eTag": null, "versionId": null, "sequencer": null, "eventTime": null,
            "eventName": "ObjectRemoved:Delete", "somethingNew": 1
        }))
        .unwrap();
        assert_eq!(from_nulls, job);
    }

    #[test]
    fn round_trips_every_body() {
        let request = JobsRequest {
            jobs: vec![full_job()],
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<JobsRequest>(&text).unwrap(), request);

        let answers: JobAnswers = serde_json::from_value(json!({"jobs": [
            {"id": "j-1", "key": "uploads/red flower.jpg", "status": "accepted"},
            {"id": "j-2", "key": "uploads/b.jpg", "status": "duplicate"},
            {"key": "variants/x", "status": "refused", "code": "own-output", "message": "m"},
            {"key": "uploads/c.jpg", "status": "refused", "code": "wrong-bucket"}
        ]}))
        .unwrap();
        assert_eq!(answers.jobs[0].id.as_deref(), Some("j-1"));
        assert_eq!(
            answers
                .jobs
                .iter()
                .map(JobAnswer::is_handled)
                .collect::<Vec<_>>(),
            [true, true, true, false]
        );
        let text = serde_json::to_string(&answers).unwrap();
        assert_eq!(serde_json::from_str::<JobAnswers>(&text).unwrap(), answers);

        let error: ErrorBody =
            serde_json::from_value(json!({"code": "queue-full", "message": "try later"})).unwrap();
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"code": "queue-full", "message": "try later"})
        );
    }

    #[test]
    fn operator_messages_have_their_own_shape() {
        let message = OperatorMessage {
            operator_job: OperatorJob {
                origin: "reconcile".into(),
                bucket: "photos".into(),
                key: "uploads/a b.jpg".into(),
                etag: Some("e1".into()),
            },
        };
        let wire = serde_json::to_value(&message).unwrap();
        assert_eq!(
            wire,
            json!({"operatorJob": {"origin": "reconcile", "bucket": "photos",
                                   "key": "uploads/a b.jpg", "eTag": "e1"}})
        );
        assert_eq!(
            serde_json::from_value::<OperatorMessage>(wire).unwrap(),
            message
        );
        assert!(serde_json::from_value::<OperatorMessage>(json!({"Records": []})).is_err());
    }

    #[test]
    fn unknown_actions_are_rejected() {
        let result = serde_json::from_value::<JobRequest>(json!({
            "action": "Process", "bucket": "b", "key": "k", "eventName": "x"
        }));
        assert!(result.is_err());
    }
}

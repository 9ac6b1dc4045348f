//! The records table as the upload API uses it: the stub it writes when it presigns an
//! upload, and the caller's records it reads (one by key, or a page of the `ByOwner` index,
//! newest first).
//!
//! The daemon owns every record: it claims the stub with an UpdateItem (so `Owner`,
//! `UploadedAt`, `OriginalName` and `ContentType` stay) and writes the outcome. This module
//! never writes anything but a new stub, and never scans.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::config::OWNER_INDEX;

/// A record as DynamoDB returns it.
pub type Item = HashMap<String, AttributeValue>;

/// The status of a stub, until the daemon claims the record.
pub const STATUS_UPLOADING: &str = "UPLOADING";

/// What the API writes when it presigns an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    pub key: String,
    pub owner: String,
    /// RFC 3339 UTC with milliseconds (the index's sort key).
    pub uploaded_at: String,
    pub original_name: String,
    pub content_type: String,
    /// When DynamoDB's TTL may delete the stub if nobody claimed it (the daemon removes it).
    pub expires_at: SystemTime,
}

/// Why a table call failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("DynamoDB {operation} was throttled: {message}")]
    Throttled {
        operation: &'static str,
        message: String,
    },
    #[error("DynamoDB {operation} failed: {message}")]
    Failed {
        operation: &'static str,
        message: String,
    },
    #[error("a record already exists for {0}")]
    Exists(String),
}

/// Where the next page of `GET /images` starts: the last item's keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "t")]
    pub uploaded_at: String,
}

/// A page of the caller's records.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Cursor>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
    error: &SdkError<E, R>,
) -> RecordError {
    let message = aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string();
    match error.code() {
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => RecordError::Throttled { operation, message },
        _ => RecordError::Failed { operation, message },
    }
}

/// The table.
#[derive(Debug, Clone)]
pub struct Records {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Records {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Records {
        Records {
            client,
            table: table.into(),
        }
    }

    /// Writes the stub of a new upload, if no record has that key.
    pub async fn put_stub(&self, stub: &Stub) -> Result<(), RecordError> {
        let expires = stub
            .expires_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("FileName", s(&stub.key))
            .item("Owner", s(&stub.owner))
            .item("UploadedAt", s(&stub.uploaded_at))
            .item("OriginalName", s(&stub.original_name))
            .item("ContentType", s(&stub.content_type))
            .item("Status", s(STATUS_UPLOADING))
            .item("ExpiresAt", AttributeValue::N(expires.to_string()))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", "FileName")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => {
                Err(RecordError::Exists(stub.key.clone()))
            }
            Err(error) => Err(classify("PutItem", &error)),
        }
    }

    /// The record of `key`, if there is one (strongly consistent: a caller who just
    /// uploaded sees the stub).
    pub async fn get(&self, key: &str) -> Result<Option<Item>, RecordError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("FileName", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(output.item)
    }

    /// One page of `owner`'s records, newest first, from the `ByOwner` index.
    pub async fn list(
        &self,
        owner: &str,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page, RecordError> {
        let start = start.map(|c| {
            HashMap::from([
                ("FileName".to_owned(), s(&c.key)),
                ("Owner".to_owned(), s(owner)),
                ("UploadedAt".to_owned(), s(&c.uploaded_at)),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", "Owner")
            .expression_attribute_values(":o", s(owner))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query", &e))?;
        let text = |item: &Item, name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let next = output.last_evaluated_key.as_ref().and_then(|last| {
            Some(Cursor {
                key: text(last, "FileName")?,
                uploaded_at: text(last, "UploadedAt")?,
            })
        });
        Ok(Page {
            items: output.items.unwrap_or_default(),
            next,
        })
    }
}

//! `POST /admin/reconcile`: list the source bucket and enqueue every object whose record
//! is missing, failed, pending without a job, deleted, of another recipe version, or of
//! another ETag — the backstop that makes "nothing lost" true even when an event never
//! arrived.
//!
//! The listing is read one page at a time, and each page is checked against the records
//! and enqueued before the next is asked for: memory stays at one page however large the
//! bucket. In fleet mode the jobs go to the SQS queue (any box takes them), and the sweep
//! holds a lease in the records table, renewed every page, so two boxes never sweep at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{HttpResponse, web};

use super::{AdminState, ReconcileAnswer, ReconcileReport, ReconcileRequest, ReconcileState};
use crate::aws::records::{STATUS_DELETED, STATUS_DONE, STATUS_FAILED, STATUS_PENDING, unquoted};
use crate::error_chain::error_chain;
use crate::http_error::ServiceError;
use crate::spool::job::{Job, Origin, now_rfc3339};

/// How long a reconcile lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(120);

/// Where a fleet's reconcile sends its jobs, and who holds the lease.
#[derive(Debug, Clone)]
pub struct FleetQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// This box, as the lease names it.
    pub holder: String,
}

impl FleetQueue {
    /// Sends operator jobs to the queue, ten per call.
    async fn send(&self, requests: &[pipeline_contract::JobRequest]) -> Result<(), String> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for chunk in requests.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, request)| {
                    let body = serde_json::to_string(&pipeline_contract::OperatorMessage {
                        operator_job: pipeline_contract::OperatorJob {
                            origin: "reconcile".to_owned(),
                            bucket: request.bucket.clone(),
                            key: request.key.clone(),
                            etag: request.etag.clone(),
                        },
                    })
                    .ok()?;
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .ok()
                })
                .collect();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
            if let Some(failed) = sent.failed().first() {
                return Err(format!(
                    "{} of {} jobs not sent: {}",
                    sent.failed().len(),
                    chunk.len(),
                    failed.message().unwrap_or("no reason given")
                ));
            }
        }
        Ok(())
    }
}

/// How long `POST /admin/reconcile` waits for the reconcile before answering that it goes
/// on in the background (the CLI promises an answer within a second).
const RECONCILE_WAIT: Duration = Duration::from_millis(700);

pub async fn reconcile(
    state: web::Data<AdminState>,
    body: Option<web::Json<ReconcileRequest>>,
) -> Result<HttpResponse, ServiceError> {
    if state.reconciling.swap(true, Ordering::SeqCst) {
        return Err(ServiceError::ReconcileRunning);
    }
    let prefix = body.and_then(|b| b.into_inner().prefix).unwrap_or_default();
    let started_at = now_rfc3339();
    state.set_reconcile(ReconcileState {
        started_at: started_at.clone(),
        running: true,
        report: None,
        error: None,
    });
    let runner = state.clone().into_inner();
    let mut task = state.observed.runtime.spawn(async move {
        let result = run(&runner, &prefix).await;
        runner.set_reconcile(ReconcileState {
            started_at,
            running: false,
            report: result.as_ref().ok().cloned(),
            error: result.as_ref().err().map(ToString::to_string),
        });
        runner.reconciling.store(false, Ordering::SeqCst);
        match &result {
            Ok(report) => tracing::info!(
                prefix = report.prefix,
                listed = report.listed,
                pages = report.pages,
                enqueued = report.enqueued,
                up_to_date = report.up_to_date,
                complete = report.complete,
                "reconcile finished"
            ),
            Err(e) => tracing::error!(error = %error_chain(e), "reconcile failed"),
        }
        result
    });
    match tokio::time::timeout(RECONCILE_WAIT, &mut task).await {
        Ok(Ok(Ok(report))) => Ok(HttpResponse::Ok().json(ReconcileAnswer {
            running: false,
            report: Some(report),
        })),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(e)) => Err(ServiceError::Internal(e.to_string())),
        Err(_) => Ok(HttpResponse::Accepted().json(ReconcileAnswer {
            running: true,
            report: None,
        })),
    }
}

/// Why a listed object needs work, or `None` when its record is up to date.
fn reason(
    record: Option<&crate::aws::records::Summary>,
    etag: Option<&str>,
    recipe_version: &str,
) -> Option<&'static str> {
    let Some(record) = record else {
        return Some("missing");
    };
    match record.status.as_deref() {
        Some(STATUS_FAILED) => Some("failed"),
        Some(STATUS_PENDING) => Some("stale-pending"),
        Some(STATUS_DELETED) => Some("deleted"),
        Some(STATUS_DONE) if record.recipe_version.as_deref() != Some(recipe_version) => {
            Some("old-recipe")
        }
        Some(STATUS_DONE)
            if record.etag.is_some() && record.etag.as_deref() != etag.map(unquoted) =>
        {
            Some("changed")
        }
        Some(STATUS_DONE) => None,
        // A stub (the upload API's `UPLOADING`) or anything unknown: no finished record.
        _ => Some("missing"),
    }
}

async fn run(state: &AdminState, prefix: &str) -> Result<ReconcileReport, ServiceError> {
    let intake = &state.intake;
    let ctx = &state.observed.ctx;
    let bucket = intake.rules.source_bucket.clone();
    let recipe_version = state.recipe_version();
    let mut report = ReconcileReport {
        prefix: prefix.to_owned(),
        complete: true,
        ..ReconcileReport::default()
    };
    if let Some(fleet) = &state.fleet
        && !ctx
            .records
            .take_lease(&fleet.holder, LEASE_TTL)
            .await
            .map_err(|e| ServiceError::Internal(error_chain(&e)))?
    {
        return Err(ServiceError::ReconcileRunning);
    }
    let result = sweep(state, prefix, &bucket, &recipe_version, &mut report).await;
    if let Some(fleet) = &state.fleet
        && let Err(e) = ctx.records.drop_lease(&fleet.holder).await
    {
        tracing::warn!(error = %error_chain(&e), "cannot give the reconcile lease back; it expires by itself");
    }
    result.map(|()| report)
}

async fn sweep(
    state: &AdminState,
    prefix: &str,
    bucket: &str,
    recipe_version: &str,
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    let intake = &state.intake;
    let ctx = &state.observed.ctx;
    let mut token = None;
    loop {
        if let Some(fleet) = &state.fleet {
            ctx.records
                .take_lease(&fleet.holder, LEASE_TTL)
                .await
                .map_err(|e| ServiceError::Internal(error_chain(&e)))?;
        }
        let page = ctx
            .s3
            .list_page(bucket, prefix, token.take(), state.reconcile_page_size)
            .await
            .map_err(|e| ServiceError::Internal(error_chain(&e)))?;
        report.pages += 1;
        report.largest_page = report.largest_page.max(page.objects.len() as u64);
        let sources: Vec<_> = page
            .objects
            .into_iter()
            .filter(|o| !intake.rules.is_own_output(bucket, &o.key))
            .collect();
        report.listed += sources.len() as u64;
        let keys: Vec<String> = sources.iter().map(|o| o.key.clone()).collect();
        let records = ctx
            .records
            .summaries(&keys)
            .await
            .map_err(|e| ServiceError::Internal(error_chain(&e)))?;
        let mut requests = Vec::new();
        for object in &sources {
            if intake.queue.holds_source(bucket, &object.key) {
                report.already_queued += 1;
                continue;
            }
            match reason(
                records.get(&object.key),
                object.etag.as_deref(),
                recipe_version,
            ) {
                None => report.up_to_date += 1,
                Some(why) => {
                    *report.reasons.entry(why.to_owned()).or_default() += 1;
                    requests.push(Job::operator_request(
                        Origin::Reconcile,
                        bucket,
                        &object.key,
                        object.etag.clone(),
                    ));
                }
            }
        }
        if let Some(fleet) = &state.fleet
            && !requests.is_empty()
        {
            fleet
                .send(&requests)
                .await
                .map_err(ServiceError::Internal)?;
            report.enqueued += requests.len() as u64;
        } else if !requests.is_empty() {
            let count = requests.len() as u64;
            match intake
                .admit(requests, |r| Job::operator(Origin::Reconcile, r))
                .await
            {
                Ok(_) => report.enqueued += count,
                Err(e @ (ServiceError::QueueFull(_) | ServiceError::ShuttingDown)) => {
                    report.complete = false;
                    report.stopped_because = Some(e.to_string());
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::Summary;

    #[test]
    fn what_needs_work_and_why() {
        let done = |recipe: &str, etag: Option<&str>| Summary {
            status: Some("DONE".into()),
            recipe_version: Some(recipe.into()),
            etag: etag.map(str::to_owned),
        };
        assert_eq!(reason(None, None, "r1"), Some("missing"));
        assert_eq!(
            reason(Some(&done("r1", Some("e1"))), Some("\"e1\""), "r1"),
            None
        );
        assert_eq!(
            reason(Some(&done("r1", Some("e1"))), Some("\"e2\""), "r1"),
            Some("changed")
        );
        assert_eq!(
            reason(Some(&done("r0", None)), None, "r1"),
            Some("old-recipe")
        );
        let stub = Summary {
            status: Some("UPLOADING".into()),
            recipe_version: None,
            etag: None,
        };
        assert_eq!(reason(Some(&stub), None, "r1"), Some("missing"));
    }
}

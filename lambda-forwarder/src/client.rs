//! The signed call to the daemon: `POST /v1/jobs` with every job of one invocation.
//!
//! One attempt, no retries here: a failure goes back to Lambda, whose retries (direct S3
//! events) or the queue's redelivery (SQS) take over. Only a 2xx is success.

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pipeline_contract::{ErrorBody, JOBS_METHOD, JOBS_PATH, JobAnswers, JobsRequest, SigningKey};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

/// Why the daemon did not accept a request.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No answer within the configured timeout.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    /// The daemon could not be reached (refused, reset, DNS, TLS, …).
    #[error("could not reach the daemon: {0}")]
    Transport(String),
    /// The daemon answered 2xx, but not with one answer per job: the jobs cannot be told
    /// apart, so none counts as handled.
    #[error("the daemon's answer does not list the {sent} jobs sent: {detail}")]
    UnreadableAnswer {
        /// Jobs sent.
        sent: usize,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The daemon answered with a status other than 2xx.
    #[error("the daemon answered {status}{}", describe(code.as_deref(), message.as_deref()))]
    Rejected {
        /// HTTP status.
        status: u16,
        /// `code` of the error body, when it had one.
        code: Option<String>,
        /// `message` of the error body, when it had one.
        message: Option<String>,
    },
}

fn describe(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!(" {code}: {message}"),
        (Some(code), None) => format!(" {code}"),
        (None, Some(message)) => format!(": {message}"),
        (None, None) => String::new(),
    }
}

/// Client for the daemon's jobs endpoint, built once at cold start.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    http: reqwest::Client,
    jobs_url: Url,
    key: SigningKey,
    timeout: Duration,
}

impl DaemonClient {
    /// A client posting to `jobs_url`, signing with `key`, giving up after `timeout`.
    pub fn new(jobs_url: Url, key: SigningKey, timeout: Duration) -> Result<Self, reqwest::Error> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            // The daemon is internal: never through a proxy from the environment.
            .no_proxy()
            // Lambda freezes the process between invocations; a pooled connection the
            // daemon closed meanwhile would fail the next call. A fresh connection per
            // invocation costs one handshake inside the VPC.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("lambda-forwarder/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            jobs_url,
            key,
            timeout,
        })
    }

    /// Sends the jobs, signed. On a 2xx the daemon's answer for each job, in order (see
    /// [`JobAnswer::is_handled`](pipeline_contract::JobAnswer::is_handled)); any other
    /// answer is an error for all of them.
    pub async fn submit(&self, jobs: &JobsRequest) -> Result<JobAnswers, SubmitError> {
        let body = serde_json::to_vec(jobs).expect("job requests always serialise");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signature = pipeline_contract::sign(&self.key, JOBS_METHOD, JOBS_PATH, &body, now);
        let mut request = self
            .http
            .post(self.jobs_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in signature.pairs() {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(&error))?;
        if status.is_success() {
            let sent = jobs.jobs.len();
            return match serde_json::from_slice::<JobAnswers>(&bytes) {
                Ok(answers) if answers.jobs.len() == sent => Ok(answers),
                Ok(answers) => Err(SubmitError::UnreadableAnswer {
                    sent,
                    detail: format!("{} answers", answers.jobs.len()),
                }),
                Err(error) => Err(SubmitError::UnreadableAnswer {
                    sent,
                    detail: error.to_string(),
                }),
            };
        }
        let error_body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        Err(SubmitError::Rejected {
            status: status.as_u16(),
            code: error_body.as_ref().map(|body| body.code.clone()),
            message: error_body.map(|body| body.message),
        })
    }

    fn transport_error(&self, error: &reqwest::Error) -> SubmitError {
        if error.is_timeout() {
            return SubmitError::Timeout(self.timeout);
        }
        // reqwest's own message is terse ("error sending request"): add the causes.
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        SubmitError::Transport(text)
    }
}

//! Test harness: a minimal HTTP/1.1 server on loopback (the daemon stub and the Lambda
//! Runtime API are both built on it), fixtures, and signature checks.
//!
//! The server reads one request per connection (`content-length` bodies only, which is what
//! reqwest and the Lambda runtime client send), records it, answers, and closes.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_forwarder::{Config, Forwarder};
use pipeline_contract::{
    AnswerStatus, JobAnswer, JobAnswers, JobRequest, JobsRequest, KeySet, ReceivedSignature,
    SigningKey,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const KEY_ID: &str = "test-2024-06";
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

pub type Handler =
    Arc<dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// A loopback HTTP server that records every request.
pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = Arc::clone(&handler);
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    serve_one(stream, handler, recorded).await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(mut stream: TcpStream, handler: Handler, recorded: Arc<Mutex<Vec<Recorded>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    let header_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8(buffer[..header_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_owned();
    let path = request_line.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
        "the test server only reads content-length bodies"
    );
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buffer[header_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let request = Recorded {
        method,
        path,
        headers,
        body,
    };
    recorded.lock().unwrap().push(request.clone());
    let reply = handler(request).await;
    let mut head = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A daemon that accepts every job (202 with one `accepted` answer per job).
pub async fn daemon_accepting() -> Server {
    daemon_answering_per_job(|_| (AnswerStatus::Accepted, None)).await
}

/// A daemon that answers 202 with, for each job, the status and code `answer` gives.
pub async fn daemon_answering_per_job(
    answer: fn(&JobRequest) -> (AnswerStatus, Option<&'static str>),
) -> Server {
    Server::start(Arc::new(move |request: Recorded| {
        Box::pin(async move {
            let jobs: JobsRequest = serde_json::from_slice(&request.body).unwrap();
            let answers = JobAnswers {
                jobs: jobs
                    .jobs
                    .iter()
                    .enumerate()
                    .map(|(i, job)| {
                        let (status, code) = answer(job);
                        JobAnswer {
                            id: (status != AnswerStatus::Refused).then(|| format!("job-{i}")),
                            key: job.key.clone(),
                            status,
                            code: code.map(str::to_owned),
                            message: code.map(|c| format!("stub refused: {c}")),
                        }
                    })
                    .collect(),
            };
            Reply::new(202, serde_json::to_vec(&answers).unwrap())
                .header("content-type", "application/json")
        })
    }))
    .await
}

/// A daemon that answers every request with `status` and an error body.
pub async fn daemon_answering(status: u16) -> Server {
    Server::start(Arc::new(move |_| {
        Box::pin(async move {
            let reply = Reply::new(
                status,
                format!(r#"{{"code":"stub-{status}","message":"stub answer"}}"#),
            )
            .header("content-type", "application/json");
            if status == 503 {
                reply.header("retry-after", "5")
            } else {
                reply
            }
        })
    }))
    .await
}

/// A daemon that answers 202, but only after `delay`.
pub async fn daemon_slow(delay: Duration) -> Server {
    Server::start(Arc::new(move |_| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Reply::new(202, r#"{"jobs":[]}"#)
        })
    }))
    .await
}

/// The buckets every fixture uses.
pub const SOURCE_BUCKET: &str = "photos-source-prod";
pub const OUTPUT_BUCKET: &str = "photos-output-prod";

/// A loopback address where nothing listens.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Configuration variables for a forwarder talking to `daemon_url`.
pub fn env(daemon_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = [
        ("EC2_SERVICE_URL", daemon_url),
        ("SIGNING_KEY_ID", KEY_ID),
        ("SIGNING_KEY", SECRET),
        ("REQUEST_TIMEOUT_MS", "2000"),
        ("SOURCE_BUCKET", SOURCE_BUCKET),
        ("OUTPUT_BUCKET", OUTPUT_BUCKET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

pub async fn forwarder(daemon_url: &str, extra: &[(&str, &str)]) -> Forwarder {
    let map = env(daemon_url, extra);
    let config = Config::from_lookup(|name| map.get(name).cloned()).unwrap();
    Forwarder::from_config(config).await.unwrap()
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The daemon's key set: the test key plus an unrelated one (rotation in progress).
pub fn daemon_keys() -> KeySet {
    KeySet::try_from_keys([
        SigningKey::new(KEY_ID, SECRET).unwrap(),
        SigningKey::new("other-key", "another-secret-0123456789abcdef0123").unwrap(),
    ])
    .unwrap()
}

/// Asserts that `request` is a signed `POST /v1/jobs` that the contract's `verify` accepts,
/// and returns its decoded body.
pub fn assert_signed_jobs_request(request: &Recorded) -> JobsRequest {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, pipeline_contract::JOBS_PATH);
    assert_eq!(request.header("content-type"), Some("application/json"));
    let keys = daemon_keys();
    let received = ReceivedSignature::from_lookup(|name| request.header(name));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key_id = pipeline_contract::verify(
        &keys,
        &request.method,
        &request.path,
        &request.body,
        &received,
        now,
        pipeline_contract::DEFAULT_MAX_SKEW_SECS,
    )
    .expect("the request verifies with the contract crate");
    assert_eq!(key_id, KEY_ID);
    serde_json::from_slice(&request.body).expect("body is a JobsRequest")
}

/// An SQS event (shaped like Lambda's) with one message per `(message id, body)`.
pub fn sqs_event(messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("AQEB{id}receipt"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1714564800123",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1714564800130"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:photos-events",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// A direct S3 event (AWS shape) with one record for `raw_key` (as S3 encodes it).
pub fn s3_put(bucket: &str, raw_key: &str, sequencer: &str) -> Value {
    let mut event = fixture("aws-put.json");
    let record = &mut event["Records"][0];
    record["s3"]["bucket"]["name"] = bucket.into();
    record["s3"]["bucket"]["arn"] = format!("arn:aws:s3:::{bucket}").into();
    record["s3"]["object"]["key"] = raw_key.into();
    record["s3"]["object"]["sequencer"] = sequencer.into();
    event
}

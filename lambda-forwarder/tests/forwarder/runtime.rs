//! The built binary as a real Lambda process: a minimal Lambda Runtime API on loopback hands
//! it events (`GET /2018-06-01/runtime/invocation/next` with `Lambda-Runtime-Aws-Request-Id`
//! and `Lambda-Runtime-Deadline-Ms`) and records what it posts back to
//! `/invocation/{id}/response` or `/invocation/{id}/error`.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{Mutex as AsyncMutex, mpsc};

use crate::support::*;

/// What the function posted back for one invocation.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Response(Value),
    Error { error_type: String, body: Value },
}

struct RuntimeApi {
    server: Server,
    events: mpsc::UnboundedSender<(String, Value)>,
    outcomes: mpsc::UnboundedReceiver<(String, Outcome)>,
    first_poll: Arc<Mutex<Option<Instant>>>,
}

impl RuntimeApi {
    async fn start() -> Self {
        let (events, pending) = mpsc::unbounded_channel::<(String, Value)>();
        let pending = Arc::new(AsyncMutex::new(pending));
        let (outcome_tx, outcomes) = mpsc::unbounded_channel();
        let first_poll = Arc::new(Mutex::new(None));
        let polled = Arc::clone(&first_poll);
        let server = Server::start(Arc::new(move |request: Recorded| {
            let pending = Arc::clone(&pending);
            let outcome_tx = outcome_tx.clone();
            let polled = Arc::clone(&polled);
            Box::pin(async move {
                const PREFIX: &str = "/2018-06-01/runtime/invocation/";
                let rest = request.path.strip_prefix(PREFIX).unwrap_or_default();
                match (request.method.as_str(), rest.split_once('/')) {
                    ("GET", None) if rest == "next" => {
                        polled.lock().unwrap().get_or_insert_with(Instant::now);
                        let Some((id, event)) = pending.lock().await.recv().await else {
                            // No more events: hold the poll like Lambda does.
                            std::future::pending::<()>().await;
                            unreachable!()
                        };
                        let deadline = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_millis()
                            + 30_000;
                        Reply::new(200, event.to_string())
                            .header("content-type", "application/json")
                            .header("lambda-runtime-aws-request-id", &id)
                            .header("lambda-runtime-deadline-ms", &deadline.to_string())
                            .header(
                                "lambda-runtime-invoked-function-arn",
                                "arn:aws:lambda:eu-west-1:123456789012:function:forwarder",
                            )
                            .header("lambda-runtime-trace-id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
                    }
                    ("POST", Some((id, "response"))) => {
                        let body = serde_json::from_slice(&request.body).unwrap();
                        outcome_tx
                            .send((id.to_owned(), Outcome::Response(body)))
                            .unwrap();
                        Reply::new(202, r#"{"status":"OK"}"#)
                    }
                    ("POST", Some((id, "error"))) => {
                        let error_type = request
                            .header("lambda-runtime-function-error-type")
                            .unwrap_or_default()
                            .to_owned();
                        let body = serde_json::from_slice(&request.body).unwrap();
                        outcome_tx
                            .send((id.to_owned(), Outcome::Error { error_type, body }))
                            .unwrap();
                        Reply::new(202, r#"{"status":"OK"}"#)
                    }
                    _ => Reply::new(404, "{}"),
                }
            })
        }))
        .await;
        Self {
            server,
            events,
            outcomes,
            first_poll,
        }
    }

    async fn invoke(&mut self, id: &str, event: Value) -> Outcome {
        self.events.send((id.to_owned(), event)).unwrap();
        let (got_id, outcome) = tokio::time::timeout(Duration::from_secs(30), self.outcomes.recv())
            .await
            .expect("the function answered within 30 s")
            .expect("runtime API still running");
        assert_eq!(got_id, id);
        outcome
    }
}

/// The bootstrap process; killed when dropped.
struct Function {
    child: Child,
    started: Instant,
}

impl Function {
    fn start(runtime: &RuntimeApi, env: &[(String, String)]) -> Self {
        Self::start_program(env!("CARGO_BIN_EXE_lambda-forwarder"), runtime, env)
    }

    fn start_program(program: &str, runtime: &RuntimeApi, env: &[(String, String)]) -> Self {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime.server.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "forwarder")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2024/05/01/[$LATEST]test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/forwarder")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let child = command.spawn().expect("start the bootstrap binary");
        Self { child, started }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary the ignored measurements run: `FORWARDER_BOOTSTRAP` if set (e.g. the
/// `bootstrap` unzipped from `scripts/build-lambda`'s zip), else the test build.
fn program_under_measure() -> String {
    std::env::var("FORWARDER_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_lambda-forwarder").to_owned())
}

fn function_env(daemon_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env(daemon_url, extra).into_iter().collect()
}

#[tokio::test]
async fn bootstrap_forwards_a_direct_s3_event_and_an_sqs_batch() {
    let daemon = daemon_accepting().await;
    let mut runtime = RuntimeApi::start().await;
    let _function = Function::start(
        &runtime,
        &function_env(&daemon.url(), &[("SOURCE_PREFIX", "uploads/")]),
    );

    // Direct S3 event (asynchronous invocation).
    let outcome = runtime.invoke("req-s3", fixture("aws-put.json")).await;
    assert_eq!(
        outcome,
        Outcome::Response(json!({"forwarded": 1, "skipped": 0}))
    );
    let requests = daemon.requests();
    assert_eq!(requests.len(), 1);
    let jobs = assert_signed_jobs_request(&requests[0]).jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].key,
        "uploads/2024/05/01/trip/day 1/red flower (copy) + café 日本.jpg"
    );

    // SQS batch: one good message, one unreadable, one test event.
    let event = sqs_event(&[
        ("msg-good", fixture("moto-put.json").to_string()),
        ("msg-bad", "{\"Records\": [{}]}".into()),
        ("msg-test", fixture("test-event.json").to_string()),
    ]);
    let outcome = runtime.invoke("req-sqs", event).await;
    assert_eq!(
        outcome,
        Outcome::Response(json!({"batchItemFailures": [{"itemIdentifier": "msg-bad"}]}))
    );
    let requests = daemon.requests();
    assert_eq!(requests.len(), 2);
    let jobs = assert_signed_jobs_request(&requests[1]).jobs;
    let keys: Vec<&str> = jobs.iter().map(|job| job.key.as_str()).collect();
    assert_eq!(keys, ["uploads/nested/summer 2024/beach #1.JPG"]);
}

#[tokio::test]
async fn bootstrap_reports_an_error_to_lambda_when_the_daemon_refuses_a_direct_event() {
    let daemon = daemon_answering(503).await;
    let mut runtime = RuntimeApi::start().await;
    let _function = Function::start(&runtime, &function_env(&daemon.url(), &[]));

    let outcome = runtime.invoke("req-503", fixture("aws-put.json")).await;

    let Outcome::Error { error_type, body } = outcome else {
        panic!("expected an error, got {outcome:?}");
    };
    // lambda_runtime marks every function error "unhandled" in the header; the type we
    // chose travels in the body, which is what the failure destination records.
    assert_eq!(error_type, "unhandled");
    assert_eq!(body["errorType"], "Forwarder.NotAccepted");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("503"), "{message}");
    assert_eq!(daemon.requests().len(), 1);

    // The same process keeps serving: an SQS batch through the refusing daemon returns its
    // message to the queue instead of failing the invocation.
    let outcome = runtime.invoke("req-sqs", fixture("sqs-one.json")).await;
    assert_eq!(
        outcome,
        Outcome::Response(json!({"batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}
        ]}))
    );
}

#[tokio::test]
async fn bootstrap_refuses_to_start_without_its_configuration_and_names_the_variable() {
    let runtime = RuntimeApi::start().await;
    let mut env = function_env("http://127.0.0.1:9", &[]);
    env.retain(|(name, _)| name != "EC2_SERVICE_URL");
    let output = Command::new(env!("CARGO_BIN_EXE_lambda-forwarder"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.server.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "forwarder")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(env)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("EC2_SERVICE_URL"), "{logs}");
    // It never asked for an event.
    assert!(runtime.first_poll.lock().unwrap().is_none());
    assert!(runtime.server.requests().is_empty());
}

/// Cold start: from `spawn` to the first `GET …/invocation/next` (configuration read,
/// clients built), over 20 runs. Measures the test build of the binary, or the one named by
/// `FORWARDER_BOOTSTRAP` (e.g. the `bootstrap` unzipped from `scripts/build-lambda`'s zip):
/// `FORWARDER_BOOTSTRAP=/tmp/bootstrap cargo test -p lambda-forwarder --test forwarder --
/// --ignored --nocapture cold_start`.
#[tokio::test]
#[ignore = "measurement, not a check; run on demand"]
async fn cold_start_init_time() {
    let program = program_under_measure();
    let daemon = daemon_accepting().await;
    let mut samples = Vec::new();
    for _ in 0..20 {
        let runtime = RuntimeApi::start().await;
        let function =
            Function::start_program(&program, &runtime, &function_env(&daemon.url(), &[]));
        let init = loop {
            if let Some(polled) = *runtime.first_poll.lock().unwrap() {
                break polled - function.started;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push(init);
    }
    samples.sort();
    println!(
        "{program}: cold start to first poll over {} runs: min {:?}, median {:?}, max {:?}",
        samples.len(),
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
}

/// The SSM path of cold start, against the moto server process the harness starts (the
/// project's pinned `moto[server]==5.2.5` in `.venv`, installed by `scripts/test`, or
/// `MOTO_SERVER`): the secret is read once from an SSM SecureString through the real SDK
/// code path, and a missing parameter fails cold start naming it.
#[tokio::test]
async fn bootstrap_reads_its_signing_key_from_ssm_once_at_cold_start() {
    let endpoint = crate::moto::moto().endpoint();
    let parameter = format!("/pipeline/test/signing-key-{}", std::process::id());
    lambda_forwarder::install_crypto_provider();
    let put = reqwest::Client::new()
        .post(&endpoint)
        .header("x-amz-target", "AmazonSSM.PutParameter")
        // moto picks the service from the credential scope of the (unchecked) signature.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20240501/us-east-1/ssm/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(
            json!({"Name": parameter, "Value": SECRET, "Type": "SecureString", "Overwrite": true})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);

    let daemon = daemon_accepting().await;
    let ssm_env = |name: &str| {
        let mut env = function_env(&daemon.url(), &[("SIGNING_KEY_PARAMETER", name)]);
        env.retain(|(k, _)| k != "SIGNING_KEY");
        env.extend(
            [
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    };

    let mut runtime = RuntimeApi::start().await;
    let function =
        Function::start_program(&program_under_measure(), &runtime, &ssm_env(&parameter));
    let outcome = runtime.invoke("req-ssm", fixture("aws-put.json")).await;
    let init = runtime.first_poll.lock().unwrap().unwrap() - function.started;
    println!("cold start with the SSM read: {init:?}");
    assert_eq!(
        outcome,
        Outcome::Response(json!({"forwarded": 1, "skipped": 0}))
    );
    // Signed with the secret from SSM: the daemon's key set verifies it.
    assert_signed_jobs_request(&daemon.requests()[0]);

    let missing = format!("{parameter}-missing");
    let runtime = RuntimeApi::start().await;
    let output = Command::new(env!("CARGO_BIN_EXE_lambda-forwarder"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.server.addr.to_string())
        .envs(ssm_env(&missing))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains(&missing) && logs.contains("SIGNING_KEY_PARAMETER"),
        "{logs}"
    );
    assert!(runtime.server.requests().is_empty());
}

//! The client edges as real processes: `local-edge` (issuer, API gateway with the real
//! upload-api handler, web site) against moto, and `s3s-fs`, the S3 server that enforces
//! POST policies (`S3S_FS`, which `scripts/test` builds with `ensure_s3s`). Keys for the
//! issuer are made with `openssl genrsa`; forms are posted as browsers post them
//! (multipart/form-data, the file last).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use local_edge::Issuer;
use serde_json::Value;

use super::fixture::Fixture;
use super::moto::moto;

pub const CLIENT_ID: &str = "e2e-web";

/// A process that dies when this handle drops (its stdin closes), whose output lines are
/// kept (printed when a test fails).
#[derive(Debug)]
pub struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Process {
    /// Starts `program args` under a `sh` wrapper, waits for a line starting with one of
    /// `wanted` (each once), returns them in order.
    fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        wanted: &[&str],
    ) -> (Process, Vec<String>) {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" 2>&1 & pid=$!; cat >/dev/null; kill $pid 2>/dev/null"#)
            .arg("sh")
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        let process = Process { child, lines, name };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found: Vec<String> = wanted
                .iter()
                .filter_map(|w| {
                    process
                        .lines
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|l| l.contains(w))
                        .cloned()
                })
                .collect();
            if found.len() == wanted.len() {
                return (process, found);
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not print {wanted:?} within 60 s:\n{}",
                process.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- {} output ----\n{}\n---- end ----",
                self.name,
                self.log()
            );
        }
    }
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// An RSA key (PKCS#1 PEM) made by `openssl genrsa`, one per `name` for the whole run.
pub fn rsa_key(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("edge-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let path = dir.join(format!("{name}.pem"));
    // Tests run in parallel: one makes the key (into a temporary file, renamed whole).
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let partial = dir.join(format!("{name}.pem.partial"));
        let status = Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&partial)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .expect("openssl (Debian's openssl package) makes the test keys");
        assert!(status.success(), "openssl genrsa failed");
        std::fs::rename(&partial, &path).unwrap();
    }
    path
}

/// An issuer with the key `name`, claiming to be `url` (to sign tokens in tests).
pub fn issuer(name: &str, url: &str) -> Issuer {
    let der = local_edge::issuer::read_pkcs1_key(&std::fs::read(rsa_key(name)).unwrap()).unwrap();
    Issuer::new(url, CLIENT_ID, &der).unwrap()
}

/// Adds the `ByOwner` index (partition `Owner`, sort `UploadedAt`) to the fixture's table,
/// as the stack defines it.
pub fn add_owner_index(fx: &Fixture) {
    let dynamodb = aws_sdk_dynamodb::Client::new(fx.sdk());
    fx.block_on(async {
        dynamodb
            .update_table()
            .table_name(&fx.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("Owner")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("UploadedAt")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .global_secondary_index_updates(
                aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                    .create(
                        aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                            .index_name("ByOwner")
                            .key_schema(
                                KeySchemaElement::builder()
                                    .attribute_name("Owner")
                                    .key_type(KeyType::Hash)
                                    .build()
                                    .unwrap(),
                            )
                            .key_schema(
                                KeySchemaElement::builder()
                                    .attribute_name("UploadedAt")
                                    .key_type(KeyType::Range)
                                    .build()
                                    .unwrap(),
                            )
                            .projection(
                                Projection::builder()
                                    .projection_type(ProjectionType::All)
                                    .build(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("add the ByOwner index: {e:?}"));
    });
}

/// The `local-edge` binary of this profile, built when older than its sources.
fn local_edge_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
            let binary = profile_dir.join("local-edge");
            let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
            let sources = ["tools/local-edge/src", "upload-api/src", "Cargo.lock"];
            let fresh = built.is_some_and(|built| {
                sources
                    .iter()
                    .all(|s| newest(&workspace().join(s)).is_none_or(|t| t <= built))
            });
            if !fresh {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let mut build = Command::new(cargo);
                build
                    .args([
                        "build",
                        "-p",
                        "local-edge",
                        "--bin",
                        "local-edge",
                        "--target-dir",
                    ])
                    .arg(profile_dir.parent().unwrap())
                    .current_dir(workspace());
                if profile_dir.file_name().is_some_and(|n| n == "release") {
                    build.arg("--release");
                }
                assert!(
                    build.status().expect("cargo build").success(),
                    "cargo build -p local-edge failed"
                );
            }
            binary
        })
        .clone()
}

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| newest(&e.ok()?.path()))
        .max()
}

/// `local-edge` for a fixture: its issuer (key `issuer`), its gateway in front of the
/// upload API on the fixture's table and source bucket (uploads go to moto), its site
/// serving `web/` and the fixture's output bucket.
#[derive(Debug)]
pub struct Edge {
    pub issuer_url: String,
    pub api_url: String,
    pub web_url: String,
    pub issuer: Issuer,
    pub process: Process,
    pub http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Edge {
    pub fn start(fx: &Fixture, extra_env: &[(&str, &str)]) -> Edge {
        let key = rsa_key("issuer");
        let moto = moto().endpoint();
        let mut env: Vec<(String, String)> = [
            ("TABLE", fx.table.as_str()),
            ("SOURCE_BUCKET", fx.source_bucket.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "e2e-session-token"),
            ("RUST_LOG", "info"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push(("UPLOAD_URL".into(), format!("{moto}/{}/", fx.source_bucket)));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let args = vec![
            "--key".to_owned(),
            key.display().to_string(),
            "--client-id".to_owned(),
            CLIENT_ID.to_owned(),
            "--web-dir".to_owned(),
            workspace().join("web").display().to_string(),
            "--output-bucket".to_owned(),
            fx.output_bucket.clone(),
        ];
        let (process, lines) = Process::start(
            "local-edge",
            &local_edge_binary(),
            &args,
            &env,
            &["issuer http", "api http", "web http"],
        );
        let url = |line: &str| line.rsplit(' ').next().unwrap().to_owned();
        let issuer_url = url(&lines[0]);
        Edge {
            issuer: issuer("issuer", &issuer_url),
            issuer_url,
            api_url: url(&lines[1]),
            web_url: url(&lines[2]),
            process,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A fresh access token of `user` from the edge's own issuer.
    pub fn token(&self, user: &str) -> String {
        self.issuer.access_token(user, SystemTime::now())
    }

    /// `method path` on the API with `token` (no Authorization header when `None`).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.block_on(async {
            let mut request = self
                .http
                .request(method.parse().unwrap(), format!("{}{path}", self.api_url));
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// `POST /uploads` for `user`; the answer.
    pub fn presign(&self, user: &str, name: &str, content_type: &str, size: usize) -> (u16, Value) {
        self.call(
            "POST",
            "/uploads",
            Some(&self.token(user)),
            Some(serde_json::json!({"name": name, "content_type": content_type, "size": size})),
        )
    }
}

/// Posts `fields` then the file as multipart/form-data to `url`: (status, body).
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    fields: &[(String, String)],
    file: &[u8],
    file_type: &str,
) -> (u16, String) {
    let boundary = format!("----edge{}", uuid_like());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo\"\r\nContent-Type: {file_type}\r\n\r\n").as_bytes());
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = http
        .post(url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// The fields of a presigned POST answer, in the order given.
pub fn form_fields(upload: &Value) -> Vec<(String, String)> {
    upload["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The s3s-fs server: `S3S_FS`, else the copy `scripts/test` builds into `.cache/`.
#[derive(Debug)]
pub struct S3s {
    pub endpoint: String,
    pub root: PathBuf,
    _process: Process,
}

pub const S3S_ACCESS_KEY: &str = "AKIAEDGETESTS000001";
pub const S3S_SECRET_KEY: &str = "edge/tests/secret/key/0000000000000000000";

impl S3s {
    pub fn start(name: &str) -> S3s {
        let program = std::env::var_os("S3S_FS")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join(".cache/s3s-fs-0.14.1/bin/s3s-fs"));
        assert!(
            program.exists(),
            "s3s-fs not found at {}: run scripts/test (its ensure_s3s builds it once), or set S3S_FS",
            program.display()
        );
        let root = std::env::temp_dir().join(format!("s3s-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let args: Vec<String> = [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--access-key",
            S3S_ACCESS_KEY,
            "--secret-key",
            S3S_SECRET_KEY,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([root.display().to_string()])
        .collect();
        let env = vec![
            ("RUST_LOG".to_owned(), "s3s_fs=info,s3s=info".to_owned()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        let (process, lines) = Process::start(
            "s3s-fs",
            &program,
            &args,
            &env,
            &["server is running at http://"],
        );
        let endpoint = lines[0]
            .split("server is running at ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned();
        S3s {
            endpoint,
            root,
            _process: process,
        }
    }

    /// Makes a bucket (s3s-fs keeps each bucket as a directory of its root).
    pub fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).unwrap();
    }

    /// The stored bytes of an object, if it exists.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(bucket).join(key)).ok()
    }
}

impl Drop for S3s {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

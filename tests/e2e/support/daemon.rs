//! The daemon as a real process: the `ec2-service` binary built once for this test run,
//! a config file per test pointing it at moto (or at a [`Proxy`](super::proxy::Proxy) in
//! front of it), signed requests, signals, and its JSON log lines (printed when a test
//! fails).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ec2_service::cli::admin_client::{self, Response};
use pipeline_contract::{JOBS_PATH, JobAnswers, JobRequest, JobsRequest, SigningKey};
use serde_json::Value;

use super::fixture::{Fixture, KEY_ID, SECRET};

/// The daemon binary of this profile (the tests crate cannot use another package's
/// `CARGO_BIN_EXE_*`). `cargo test --workspace` has just built it; when it is older than
/// the daemon's sources (only these tests were built), it is built here, once.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/e2e-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
        let binary = profile_dir.join("ec2-service");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sources = [
            "ec2-service/src",
            "ec2-service/Cargo.toml",
            "contract/src",
            "Cargo.toml",
            "Cargo.lock",
        ]
        .map(|p| newest(&workspace.join(p)));
        let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
        if built.is_some_and(|built| sources.iter().flatten().all(|s| *s <= built)) {
            return binary;
        }
        let target_dir = profile_dir.parent().unwrap();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            // The tests inject faults (src/faults.rs): the same features as `cargo test`.
            .args([
                "build",
                "-p",
                "ec2-service",
                "--bin",
                "ec2-service",
                "--features",
                "faults",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        eprintln!("building the daemon: {build:?}");
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p ec2-service failed");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// The newest modification time of a file or of any file under a directory.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| newest(&entry.ok()?.path()))
        .max()
}

/// The configuration of a test daemon; `extra` is appended (TOML sections).
pub fn config_text(fx: &Fixture, endpoint: &str, extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
drain_secs = 10
concurrency = 2
render_threads = 2
memory_budget_bytes = 536870912

[admin]
listen = "127.0.0.1:0"

[scratch]
dir = "{scratch}"
min_free_bytes = 1048576

[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"
force_path_style = true
source_bucket = "{source}"
output_bucket = "{output}"
table = "{table}"
connect_timeout_ms = 1000
attempt_timeout_ms = 5000
sdk_max_attempts = 1

[retry]
max_attempts = 6
base_delay_ms = 100
max_delay_ms = 400

[log]
level = "info,aws_config=warn"
format = "json"

[recipe]
version = "e2e-1"
[[recipe.variants]]
name = "large"
width = 800
height = 800
fit = "inside"
format = "jpeg"
quality = 80
[[recipe.variants]]
name = "thumb"
width = 128
height = 128
fit = "cover"
format = "webp"
quality = 70
{extra}
"#,
        scratch = fx.scratch.display(),
        source = fx.source_bucket,
        output = fx.output_bucket,
        table = fx.table,
    )
}

/// A running daemon process.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    key: SigningKey,
}

/// The environment of every process the tests start: AWS credentials for moto and the
/// signing key, and nothing of ours.
fn environment(command: &mut Command) -> &mut Command {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "EC2_SERVICE__SIGNING__KEYS",
            format!("{KEY_ID}:{SECRET},other-key:{}", "z".repeat(40)),
        )
}

impl Daemon {
    /// Writes the config (with `extra` sections) and starts the daemon against `endpoint`,
    /// with `env` overriding the file (`EC2_SERVICE__SECTION__KEY`).
    pub fn start(fx: &Fixture, endpoint: &str, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let config = fx.scratch.with_extension("toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, config_text(fx, endpoint, extra)).unwrap();
        Daemon::start_with(fx, &config, env)
    }

    /// Starts the daemon with an existing config file.
    pub fn start_with(fx: &Fixture, config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(binary());
        environment(&mut command);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ec2-service");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Kept before anyone is told about it, so that `logs()` already has it.
                sink.lock().unwrap().push(line.clone());
                if let Some(sender) = &tx
                    && let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "ready"
                {
                    let _ = sender.send((
                        event["listen"].as_str().unwrap_or("").to_owned(),
                        event["admin"].as_str().unwrap_or("").to_owned(),
                    ));
                    tx = None;
                }
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            admin: "127.0.0.1:1".parse().unwrap(),
            config: config.to_owned(),
            logs,
            key: fx.key(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((listen, admin)) => {
                daemon.addr = listen.parse().expect("ready line names the address");
                daemon.admin = admin.parse().expect("ready line names the admin address");
            }
            Err(_) => panic!(
                "the daemon did not log ready:\n{}",
                daemon.logs().join("\n")
            ),
        }
        daemon
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Log events (JSON) whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["message"] == message)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The daemon's resident memory at its peak so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status")
            * 1024
    }

    /// `POST /v1/jobs`, signed with the configured key, now.
    pub fn post_jobs(&self, jobs: &[JobRequest]) -> Response {
        let body = serde_json::to_vec(&JobsRequest {
            jobs: jobs.to_vec(),
        })
        .unwrap();
        self.post_signed(&body, &self.key, now())
    }

    /// `POST /v1/jobs` with any body, key and timestamp.
    pub fn post_signed(&self, body: &[u8], key: &SigningKey, at: u64) -> Response {
        let signature = pipeline_contract::sign(key, "POST", JOBS_PATH, body, at);
        let mut headers: Vec<(&str, String)> = signature.pairs().to_vec();
        headers.push(("Content-Type", "application/json".to_owned()));
        self.request("POST", JOBS_PATH, &headers, body)
    }

    /// Posts jobs and expects 202; returns the answer.
    pub fn submit(&self, jobs: &[JobRequest]) -> JobAnswers {
        let response = self.post_jobs(jobs);
        assert_eq!(response.status, 202, "{}", response.text());
        serde_json::from_slice(&response.body).unwrap()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Response {
        admin_client::request(
            self.addr,
            method,
            path,
            headers,
            body,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn admin_get(&self, path: &str) -> Value {
        let r = admin_client::request(self.admin, "GET", path, &[], b"", Duration::from_secs(10))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// `POST` to the admin listener with a JSON body; the answer's JSON (2xx expected).
    pub fn admin_post(&self, path: &str, body: &[u8]) -> Value {
        let r = admin_client::request(
            self.admin,
            "POST",
            path,
            &[("Content-Type", "application/json".to_owned())],
            body,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!((200..300).contains(&r.status), "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// Waits until the job `id` finished; returns how (`status`, `code`, …).
    pub fn wait_finished(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let jobs = self.admin_get("/admin/jobs");
            if let Some(done) = jobs["recent"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["id"] == id)
            {
                return done.clone();
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not finish within {timeout:?}: {jobs:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The value of a metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Runs an operator command against this daemon (its config file, and its real admin
    /// address through the environment, since the file says port 0).
    pub fn cli(&self, args: &[&str]) -> Output {
        environment(&mut Command::new(binary()))
            .env("EC2_SERVICE__ADMIN__LISTEN", self.admin.to_string())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself.
    /// Whether the process has exited by itself (does not wait).
    pub fn try_exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(child) => child.try_wait().unwrap().is_some(),
        }
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- daemon log ----\n{}\n---- end of daemon log ----",
                self.logs().join("\n")
            );
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Job files still stored in a scratch directory.
pub fn stored_jobs(scratch: &Path) -> Vec<String> {
    std::fs::read_dir(scratch.join("jobs"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

impl Daemon {
    /// Waits until a metric series reaches `value`.
    pub fn wait_metric(&self, series: &str, value: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.metric(series);
            if now >= value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {now}, not {value}, after {timeout:?}:\n{}",
                self.get("/metrics").text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

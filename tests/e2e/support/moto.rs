//! One moto server for the whole test binary, started on loopback on first use. Only the
//! standard library: the forwarder's tests include this file too (`#[path]`).
//!
//! It runs under a small `sh` wrapper that kills it when our end of its stdin closes, so
//! that it goes away with this process however the process ends (even `kill -9`). Tests
//! share the server but never its state: each creates its own buckets and table.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running server.
#[derive(Debug)]
pub struct Moto {
    pub addr: SocketAddr,
    /// Held so that its stdin stays open (closing it stops the server).
    _child: Mutex<Child>,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Where `moto_server` is: `MOTO_SERVER`, else the project's `.venv`.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    panic!(
        "moto_server not found (neither MOTO_SERVER nor {}): run scripts/test, which installs \
         moto[server]==5.2.5 into .venv, or set MOTO_SERVER to a moto_server 5.2.5",
        venv.display()
    );
}

/// The shared server, started on first call.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

fn start() -> Moto {
    let program = moto_server();
    let mut child = Command::new("sh")
        .arg("-c")
        // moto's log (werkzeug on stderr) comes to our stdout pipe; `cat` returns when our
        // end of stdin closes, and then the server is killed.
        .arg(r#""$0" -H 127.0.0.1 -p 0 2>&1 & pid=$!; cat >/dev/null; kill $pid 2>/dev/null"#)
        .arg(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut seen = Vec::new();
        // Keep reading for the server's whole life: a full pipe would block it.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(sender) = &tx {
                if let Some(rest) = line.split("Running on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = sender.send(Ok(addr));
                    tx = None;
                } else {
                    seen.push(line);
                }
            }
        }
        if let Some(sender) = tx {
            let _ = sender.send(Err(seen.join("\n")));
        }
    });
    let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => addr.parse().expect("moto prints IP:PORT"),
        Ok(Err(output)) => panic!("moto_server exited without a port:\n{output}"),
        Err(_) => panic!("moto_server printed no port within 60 s"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = answers(addr, "/moto-api/");
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto at {addr} never answered GET /moto-api/"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        addr,
        _child: Mutex::new(child),
    }
}

/// Whether `GET path` answers 200 within a couple of seconds.
fn answers(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

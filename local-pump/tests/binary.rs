//! The `local-pump` binary as the demo and the box start it: a missing or bad variable
//! stops it at once with a line naming the variable. (Also makes `cargo test` build the
//! binary with the test run's features, so the box tier and the demo reuse it.)

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-pump"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run local-pump");
    // The log goes to stdout (tracing's default), where the demo and systemd collect it.
    let log = [out.stdout, out.stderr].concat();
    (
        out.status.code(),
        String::from_utf8_lossy(&log).into_owned(),
    )
}

#[test]
fn a_missing_queue_or_a_bad_batch_size_is_named() {
    let (code, log) = run(&[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("QUEUE_URL is not set"), "{log}");
    let (code, log) = run(&[("QUEUE_URL", "http://127.0.0.1:9/q"), ("BATCH_SIZE", "11")]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("BATCH_SIZE=\"11\" must be a number in 1..=10"),
        "{log}"
    );
    // The forwarder's own configuration comes next, and is named too.
    let (code, log) = run(&[("QUEUE_URL", "http://127.0.0.1:9/q")]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("EC2_SERVICE_URL"), "{log}");
}

//! Faults a test can inject into a real daemon, to prove what happens when a part fails:
//! only with the `faults` feature (the end-to-end tests enable it; release builds do not
//! have it, and then every function here does nothing).
//!
//! `EC2_SERVICE_FAULTS` holds `;`-separated faults, read once:
//!
//! - `panic@SUBSTRING`: a job whose key contains SUBSTRING panics in its task.
//! - `render-delay-ms=MS@SUBSTRING`: a job whose key contains SUBSTRING waits MS before it
//!   renders (a slow render).
//! - `http-exit-after-ms=MS`: the HTTP server stops MS after the daemon is ready, as if
//!   its thread had died.
//! - `abort@SUBSTRING`: the whole process aborts when a job whose key contains SUBSTRING
//!   is about to render (a source that kills daemons).

use std::time::Duration;

#[cfg(feature = "faults")]
mod enabled {
    use std::sync::OnceLock;
    use std::time::Duration;

    #[derive(Debug, Default)]
    pub struct Faults {
        pub panic: Vec<String>,
        pub abort: Vec<String>,
        pub render_delay: Vec<(Duration, String)>,
        pub http_exit_after: Option<Duration>,
    }

    pub fn faults() -> &'static Faults {
        static FAULTS: OnceLock<Faults> = OnceLock::new();
        FAULTS.get_or_init(|| {
            let mut faults = Faults::default();
            let text = std::env::var("EC2_SERVICE_FAULTS").unwrap_or_default();
            for fault in text.split(';').map(str::trim).filter(|f| !f.is_empty()) {
                let (spec, target) = fault.split_once('@').unwrap_or((fault, ""));
                let (name, value) = spec.split_once('=').unwrap_or((spec, ""));
                let ms = || Duration::from_millis(value.parse().unwrap_or(0));
                match name {
                    "panic" => faults.panic.push(target.to_owned()),
                    "abort" => faults.abort.push(target.to_owned()),
                    "render-delay-ms" => faults.render_delay.push((ms(), target.to_owned())),
                    "http-exit-after-ms" => faults.http_exit_after = Some(ms()),
                    other => eprintln!("ec2-service: unknown fault {other:?} ignored"),
                }
            }
            faults
        })
    }
}

/// Panics when the `panic@` fault names this key.
pub fn maybe_panic(key: &str) {
    #[cfg(feature = "faults")]
    if enabled::faults()
        .panic
        .iter()
        .any(|s| key.contains(s.as_str()))
    {
        panic!("injected fault: panic@ for {key}");
    }
    let _ = key;
}

/// Aborts the process when the `abort@` fault names this key.
pub fn maybe_abort(key: &str) {
    #[cfg(feature = "faults")]
    if enabled::faults()
        .abort
        .iter()
        .any(|s| key.contains(s.as_str()))
    {
        eprintln!("injected fault: abort@ for {key}");
        std::process::abort();
    }
    let _ = key;
}

/// How long this key's render is held back by a `render-delay-ms` fault.
pub fn render_delay(key: &str) -> Option<Duration> {
    #[cfg(feature = "faults")]
    if let Some((delay, _)) = enabled::faults()
        .render_delay
        .iter()
        .find(|(_, s)| key.contains(s.as_str()))
    {
        return Some(*delay);
    }
    let _ = key;
    None
}

/// When the HTTP server should stop by itself (`http-exit-after-ms`).
pub fn http_exit_after() -> Option<Duration> {
    #[cfg(feature = "faults")]
    if let Some(after) = enabled::faults().http_exit_after {
        return Some(after);
    }
    None
}

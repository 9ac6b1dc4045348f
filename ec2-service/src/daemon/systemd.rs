//! The systemd notify protocol (`sd_notify`), spoken with the standard library: datagrams
//! of `KEY=VALUE` lines to the unix socket named by `NOTIFY_SOCKET` (a path, or an
//! abstract-namespace name when it starts with `@`).
//!
//! Used for `READY=1` once the daemon listens and has resumed its jobs, `STATUS=` lines,
//! `STOPPING=1` on SIGTERM and `WATCHDOG=1` pings at half the `WATCHDOG_USEC` interval.
//! Without `NOTIFY_SOCKET` (not under systemd) every call does nothing. Failures to send are
//! logged, never fatal: the service works the same without a manager.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A handle on the manager's notification socket, read once from the environment.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the process
    /// environment (never changing it).
    pub fn from_env() -> Notifier {
        let get = |name: &str| std::env::var(name).ok();
        Notifier::from_lookup(get)
    }

    /// As [`from_env`](Self::from_env), with the variables looked up through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Notifier {
        let target = lookup("NOTIFY_SOCKET").and_then(|name| match connect(&name) {
            Ok(target) => Some(target),
            Err(e) => {
                tracing::warn!(socket = %name, error = %e, "NOTIFY_SOCKET is set but unusable");
                None
            }
        });
        let for_us =
            lookup("WATCHDOG_PID").is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = lookup("WATCHDOG_USEC")
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Whether a manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1` (half the manager's timeout), if it asked for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// Sends one notification (newline-separated `KEY=VALUE` assignments).
    pub fn notify(&self, state: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }

    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={status}"));
    }

    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }
}

fn connect(name: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = if let Some(abstract_name) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name.as_bytes())?
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@...)",
        ));
    };
    Ok((UnixDatagram::unbound()?, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn notifies_a_path_socket_and_reads_the_watchdog() {
        let path = std::env::temp_dir().join(format!("ec2-service-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        let env = [
            ("NOTIFY_SOCKET", path.display().to_string()),
            ("WATCHDOG_USEC", "30000000".to_owned()),
            ("WATCHDOG_PID", std::process::id().to_string()),
        ];
        let notifier = Notifier::from_lookup(lookup(&env));
        assert!(notifier.is_enabled());
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
        notifier.ready("serving");
        assert_eq!(receive(&manager), "READY=1\nSTATUS=serving");
        notifier.watchdog();
        assert_eq!(receive(&manager), "WATCHDOG=1");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn notifies_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ec2-service-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let env = [("NOTIFY_SOCKET", format!("@{name}"))];
        let notifier = Notifier::from_lookup(lookup(&env));
        notifier.stopping("draining");
        assert_eq!(receive(&manager), "STOPPING=1\nSTATUS=draining");
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn without_a_manager_nothing_happens() {
        let notifier = Notifier::from_lookup(|_| None);
        assert!(!notifier.is_enabled());
        notifier.ready("x");
        let other_pid = [
            ("WATCHDOG_USEC", "1000".to_owned()),
            ("WATCHDOG_PID", "1".to_owned()),
        ];
        assert_eq!(
            Notifier::from_lookup(lookup(&other_pid)).watchdog_interval(),
            None,
            "a watchdog meant for another process is ignored"
        );
    }
}

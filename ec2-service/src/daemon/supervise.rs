//! Whether the daemon's parts are alive, for systemd's watchdog: `WATCHDOG=1` is sent
//! only while the HTTP server answers its own `GET /healthz` on loopback and the
//! dispatcher runs. A daemon with a dead part stops pinging (systemd kills and restarts
//! it), and the main loop exits non-zero as soon as it sees a part end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::systemd::Notifier;
use crate::cli::admin_client;

/// How long the self-probe of the HTTP server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the watchdog looks at.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The public listener, as bound.
    pub public: SocketAddr,
    /// Set when the dispatcher has ended.
    pub dispatcher_ended: Arc<AtomicBool>,
}

/// The address to probe a listener bound to `addr` on (an unspecified address is probed
/// on loopback).
pub fn probe_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Whether the HTTP server answers `GET /healthz` with 200.
pub async fn http_answers(addr: SocketAddr) -> bool {
    let addr = probe_address(addr);
    tokio::task::spawn_blocking(move || {
        admin_client::request(addr, "GET", "/healthz", &[], b"", PROBE_TIMEOUT)
            .is_ok_and(|r| r.status == 200)
    })
    .await
    .unwrap_or(false)
}

/// Pings the watchdog at `every` while every part is alive; logs once when one is not.
pub async fn watchdog(notifier: Arc<Notifier>, every: Duration, parts: Parts) {
    let mut ticks = tokio::time::interval(every);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let dispatcher = !parts.dispatcher_ended.load(Ordering::SeqCst);
        let http = http_answers(parts.public).await;
        if dispatcher && http {
            if failing {
                tracing::info!("every part answers again; watchdog pings resume");
                failing = false;
            }
            notifier.watchdog();
        } else if !failing {
            failing = true;
            tracing::error!(
                http,
                dispatcher,
                "a part of the daemon is not alive; the watchdog is no longer pinged"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(probe_address(any), "127.0.0.1:8080".parse().unwrap());
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(probe_address(v6), "[::1]:8080".parse().unwrap());
        let fixed: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        assert_eq!(probe_address(fixed), fixed);
    }

    #[tokio::test]
    async fn a_listener_that_does_not_answer_is_not_alive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(!http_answers(addr).await);
    }
}

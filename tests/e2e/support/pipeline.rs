//! The whole pipeline wired as the stack wires it in AWS, on moto: the source bucket's
//! notifications go to a fresh SQS queue; the real forwarder handler reads it through
//! `local_pump::Pump` (Lambda's SQS event source mapping, on a thread of this process);
//! the daemon runs as a process. Tests only upload to and delete from S3.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use lambda_forwarder::config as vars;
use local_pump::{Pump, Settings};

use super::daemon::Daemon;
use super::fixture::{Fixture, KEY_ID, SECRET, sdk_config};
use super::moto::moto;

/// The prefix the notification and the forwarder watch.
pub const PREFIX: &str = "uploads/";

/// Seconds a message the forwarder failed stays invisible before it comes back.
pub const VISIBILITY_TIMEOUT_SECS: i32 = 3;

#[derive(Debug)]
pub struct Pipeline {
    pub fx: Fixture,
    pub daemon: Daemon,
    pub queue_url: String,
    sqs: aws_sdk_sqs::Client,
    pump: Option<PumpThread>,
}

#[derive(Debug)]
struct PumpThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Pipeline {
    /// A fresh world (buckets, table, queue, notification), the daemon, and the pump.
    pub fn start(name: &str) -> Pipeline {
        let fx = Fixture::new(name);
        let sqs = aws_sdk_sqs::Client::new(fx.sdk());
        let mut queue_name = format!("events-{}", fx.name);
        queue_name.truncate(80);
        let (queue_url, queue_arn) = fx.block_on(async {
            let url = sqs
                .create_queue()
                .queue_name(&queue_name)
                .attributes(
                    QueueAttributeName::VisibilityTimeout,
                    VISIBILITY_TIMEOUT_SECS.to_string(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("create queue: {e:?}"))
                .queue_url
                .expect("a queue URL");
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .expect("a queue ARN");
            (url, arn)
        });
        fx.notify_queue(&queue_arn, PREFIX);
        let daemon = Daemon::start(&fx, &moto().endpoint(), "", &[]);
        let pump = PumpThread::start(&format!("http://{}", daemon.addr), &queue_url);
        Pipeline {
            fx,
            daemon,
            queue_url,
            sqs,
            pump: Some(pump),
        }
    }

    /// Messages in the queue: (visible, in flight).
    pub fn queue_depth(&self) -> (u64, u64) {
        let attributes = self.fx.block_on(async {
            self.sqs
                .get_queue_attributes()
                .queue_url(&self.queue_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default()
        });
        let count = |name: &QueueAttributeName| {
            attributes
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            count(&QueueAttributeName::ApproximateNumberOfMessages),
            count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Waits until the pump has deleted every message.
    pub fn wait_queue_empty(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let depth = self.queue_depth();
            if depth == (0, 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the queue still holds {depth:?} (visible, in flight) after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the daemon (SIGTERM, drained) and leaves it down.
    pub fn stop_daemon(&mut self) {
        self.daemon.signal("TERM");
        assert!(self.daemon.wait(Duration::from_secs(30)).success());
    }

    /// Starts the daemon again on the address the forwarder calls.
    pub fn restart_daemon(&mut self) {
        let listen = self.daemon.addr.to_string();
        self.daemon = Daemon::start(
            &self.fx,
            &moto().endpoint(),
            "",
            &[("EC2_SERVICE__SERVER__LISTEN", &listen)],
        );
        assert_eq!(self.daemon.addr.to_string(), listen);
    }

    /// Stops the pump (the batch in hand is finished first).
    pub fn stop_pump(&mut self) {
        if let Some(pump) = self.pump.take() {
            let _ = pump.stop.send(());
            let _ = pump.thread.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop_pump();
    }
}

impl PumpThread {
    fn start(daemon_url: &str, queue_url: &str) -> PumpThread {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let daemon_url = daemon_url.to_owned();
        let queue_url = queue_url.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let sdk = sdk_config().await;
                // The forwarder's own configuration, as its Lambda environment would hold it.
                let config = lambda_forwarder::Config::from_lookup(|name| {
                    Some(
                        match name {
                            vars::EC2_SERVICE_URL => daemon_url.as_str(),
                            vars::SIGNING_KEY_ID => KEY_ID,
                            vars::SIGNING_KEY => SECRET,
                            vars::SOURCE_PREFIX => PREFIX,
                            vars::REQUEST_TIMEOUT_MS => "10000",
                            _ => return None,
                        }
                        .to_owned(),
                    )
                })
                .expect("forwarder configuration");
                let forwarder = lambda_forwarder::Forwarder::from_config(config)
                    .await
                    .expect("forwarder");
                let settings = Settings {
                    queue_url,
                    batch_size: 10,
                    visibility_timeout_secs: VISIBILITY_TIMEOUT_SECS,
                    wait_secs: 1,
                };
                let pump = Pump::new(
                    aws_sdk_sqs::Client::new(&sdk),
                    forwarder,
                    settings,
                    "us-east-1",
                );
                let _ = ready.send(());
                pump.run(async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        is_ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the pump started");
        PumpThread { stop, thread }
    }
}

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
use super::proxy::Proxy;

/// The prefix the notification and the forwarder watch.
pub const PREFIX: &str = "uploads/";

/// Seconds a message the forwarder failed stays invisible before it comes back.
pub const VISIBILITY_TIMEOUT_SECS: i32 = 3;

/// Receives after which a message moves to the dead-letter queue (the stack uses 5).
pub const MAX_RECEIVE_COUNT: u32 = 3;

#[derive(Debug)]
pub struct Pipeline {
    pub fx: Fixture,
    pub daemon: Daemon,
    pub queue_url: String,
    pub dlq_url: String,
    /// Between the daemon and moto, when started behind one.
    proxy: Option<std::sync::Arc<Proxy>>,
    /// What the daemon's environment overrides (kept across restarts).
    daemon_env: Vec<(String, String)>,
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
        Pipeline::start_with(name, false, &[])
    }

    /// As [`start`](Self::start), with the daemon reaching AWS through a proxy that
    /// [`set_endpoint_up`](Self::set_endpoint_up) can cut.
    pub fn start_behind_proxy(name: &str, env: &[(&str, &str)]) -> Pipeline {
        Pipeline::start_with(name, true, env)
    }

    fn start_with(name: &str, behind_proxy: bool, env: &[(&str, &str)]) -> Pipeline {
        let daemon_env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let fx = Fixture::new(name);
        let sqs = aws_sdk_sqs::Client::new(fx.sdk());
        let queues = Queues::create(&fx, &sqs, MAX_RECEIVE_COUNT);
        let (queue_url, queue_arn, dlq_url) = (queues.url, queues.arn, queues.dlq_url);
        fx.notify_queue(&queue_arn, PREFIX);
        let proxy = behind_proxy.then(|| std::sync::Arc::new(Proxy::start(moto().addr, true)));
        let endpoint = proxy
            .as_ref()
            .map_or_else(|| moto().endpoint(), |p| p.endpoint());
        let env: Vec<(&str, &str)> = daemon_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let daemon = Daemon::start(&fx, &endpoint, "", &env);
        let pump = PumpThread::start(
            &format!("http://{}", daemon.addr),
            &queue_url,
            &fx.source_bucket,
            &fx.output_bucket,
        );
        Pipeline {
            fx,
            daemon,
            queue_url,
            dlq_url,
            proxy,
            daemon_env,
            sqs,
            pump: Some(pump),
        }
    }

    /// Messages in the queue: (visible, in flight).
    pub fn queue_depth(&self) -> (u64, u64) {
        self.depth_of(&self.queue_url)
    }

    /// Messages in the dead-letter queue (visible plus in flight).
    pub fn dlq_depth(&self) -> u64 {
        let (visible, in_flight) = self.depth_of(&self.dlq_url);
        visible + in_flight
    }

    fn depth_of(&self, url: &str) -> (u64, u64) {
        depth_of(&self.fx, &self.sqs, url)
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

    /// `kill -9` the daemon.
    pub fn kill_daemon(&mut self) {
        self.daemon.kill();
    }

    /// The proxy between the daemon and AWS: `set_up(false)` takes the endpoint away.
    pub fn endpoint_switch(&self) -> std::sync::Arc<Proxy> {
        self.proxy.clone().expect("started behind a proxy")
    }

    /// Starts the daemon again behind the proxy, on the address the forwarder calls.
    pub fn restart_daemon_behind_proxy(&mut self) {
        let listen = self.daemon.addr.to_string();
        let endpoint = self
            .proxy
            .as_ref()
            .expect("started behind a proxy")
            .endpoint();
        let mut env: Vec<(&str, &str)> = self
            .daemon_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("EC2_SERVICE__SERVER__LISTEN", &listen));
        self.daemon = Daemon::start(&self.fx, &endpoint, "", &env);
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
    fn start(daemon_url: &str, queue_url: &str, source: &str, output: &str) -> PumpThread {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let daemon_url = daemon_url.to_owned();
        let queue_url = queue_url.to_owned();
        let (source, output) = (source.to_owned(), output.to_owned());
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
                            vars::SOURCE_BUCKET => source.as_str(),
                            vars::OUTPUT_BUCKET => output.as_str(),
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

/// The event queue of a test world and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

impl Queues {
    /// A fresh queue (visibility [`VISIBILITY_TIMEOUT_SECS`]) with a DLQ after
    /// `max_receive_count` receives.
    pub fn create(fx: &Fixture, sqs: &aws_sdk_sqs::Client, max_receive_count: u32) -> Queues {
        let mut queue_name = format!("events-{}", fx.name);
        queue_name.truncate(70);
        fx.block_on(async {
            let arn_of = |url: String| {
                let sqs = sqs.clone();
                async move {
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
                }
            };
            let dlq = sqs
                .create_queue()
                .queue_name(format!("{queue_name}-dlq"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("create dlq: {e:?}"))
                .queue_url
                .expect("a queue URL");
            let (dlq_url, dlq_arn) = arn_of(dlq).await;
            let url = sqs
                .create_queue()
                .queue_name(&queue_name)
                .attributes(
                    QueueAttributeName::VisibilityTimeout,
                    VISIBILITY_TIMEOUT_SECS.to_string(),
                )
                .attributes(
                    QueueAttributeName::RedrivePolicy,
                    format!(
                        r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#
                    ),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("create queue: {e:?}"))
                .queue_url
                .expect("a queue URL");
            let (url, arn) = arn_of(url).await;
            Queues { url, arn, dlq_url }
        })
    }
}

/// Messages in a queue: (visible, in flight).
pub fn depth_of(fx: &Fixture, sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attributes = fx.block_on(async {
        sqs.get_queue_attributes()
            .queue_url(url)
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

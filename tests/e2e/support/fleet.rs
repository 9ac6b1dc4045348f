//! Fleet mode on moto: the source bucket's notifications go to a fresh SQS queue (with a
//! DLQ) and several daemons in `[intake] mode = "sqs"` read it themselves, each with its own
//! scratch directory, sharing the buckets and the table. No forwarder, no pump.

use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::fixture::Fixture;
use super::moto::moto;
use super::pipeline::{PREFIX, Queues, depth_of};

/// Seconds a received message stays invisible in these tests (the daemons extend it).
pub const FLEET_VISIBILITY_SECS: u32 = 6;

#[derive(Debug)]
pub struct Fleet {
    pub fx: Fixture,
    pub queues: Queues,
    /// One scratch world per daemon (same buckets and table).
    boxes: Vec<Fixture>,
    pub daemons: Vec<Option<Daemon>>,
    env: Vec<(String, String)>,
    sqs: aws_sdk_sqs::Client,
}

impl Fleet {
    /// `n` daemons on one queue, `running` of them started; `env` is added to every
    /// daemon's environment.
    pub fn start(
        name: &str,
        n: usize,
        running: usize,
        max_receive_count: u32,
        env: &[(&str, &str)],
    ) -> Fleet {
        let fx = Fixture::new(name);
        let sqs = aws_sdk_sqs::Client::new(fx.sdk());
        let queues = Queues::create(&fx, &sqs, max_receive_count);
        fx.notify_queue(&queues.arn, PREFIX);
        let boxes: Vec<Fixture> = (0..n).map(|i| fx.sibling(&format!("box{i}"))).collect();
        let mut fleet = Fleet {
            fx,
            queues,
            boxes,
            daemons: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            sqs,
        };
        for i in 0..n {
            let daemon = (i < running).then(|| fleet.launch(i, &[]));
            fleet.daemons.push(daemon);
        }
        fleet
    }

    fn launch(&self, i: usize, extra: &[(&str, &str)]) -> Daemon {
        let visibility = FLEET_VISIBILITY_SECS.to_string();
        let mut env: Vec<(&str, &str)> = vec![
            ("EC2_SERVICE__INTAKE__MODE", "sqs"),
            ("EC2_SERVICE__INTAKE__QUEUE_URL", &self.queues.url),
            ("EC2_SERVICE__INTAKE__WAIT_SECS", "1"),
            ("EC2_SERVICE__INTAKE__VISIBILITY_TIMEOUT_SECS", &visibility),
            ("EC2_SERVICE__INTAKE__SOURCE_PREFIX", PREFIX),
        ];
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env.extend_from_slice(extra);
        Daemon::start(&self.boxes[i], &moto().endpoint(), "", &env)
    }

    pub fn daemon(&self, i: usize) -> &Daemon {
        self.daemons[i].as_ref().expect("running")
    }

    /// `kill -9` daemon `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut daemon) = self.daemons[i].take() {
            daemon.kill();
        }
    }

    /// Starts daemon `i` again (after a kill or its own death), with `extra` environment.
    pub fn restart(&mut self, i: usize, extra: &[(&str, &str)]) {
        let daemon = self.launch(i, extra);
        self.daemons[i] = Some(daemon);
    }

    /// Takes daemon `i` out of the fleet (it has exited by itself).
    pub fn take(&mut self, i: usize) -> Daemon {
        self.daemons[i].take().expect("running")
    }

    /// Messages in the queue: (visible, in flight).
    pub fn queue_depth(&self) -> (u64, u64) {
        depth_of(&self.fx, &self.sqs, &self.queues.url)
    }

    /// Messages in the DLQ.
    pub fn dlq_depth(&self) -> u64 {
        let (visible, in_flight) = depth_of(&self.fx, &self.sqs, &self.queues.dlq_url);
        visible + in_flight
    }

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

    /// The "job finished" lines of every running daemon.
    pub fn finished_lines(&self) -> Vec<serde_json::Value> {
        self.daemons
            .iter()
            .flatten()
            .flat_map(|d| d.events("job finished"))
            .collect()
    }
}

//! The daemon's job metrics in CloudWatch (`[metrics]`): what `PutMetricData` delivered to
//! moto's CloudWatch, read back through the SDK as the stack's alarms and dashboard read it
//! (namespace `ImagePipeline`, dimension `Stack`, and `Outcome` for `JobsFinished`).

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};

use crate::support::daemon::Daemon;
use crate::support::fixture::Fixture;
use crate::support::moto::moto;
use crate::support::photo;
use crate::support::proxy::Proxy;

const WAIT: Duration = Duration::from_secs(30);
const NAMESPACE: &str = "ImagePipeline";

struct Watch {
    client: aws_sdk_cloudwatch::Client,
    stack: String,
}

impl Watch {
    fn new(fx: &Fixture, stack: &str) -> Watch {
        Watch {
            client: aws_sdk_cloudwatch::Client::new(fx.sdk()),
            stack: stack.to_owned(),
        }
    }

    /// `statistic` of `metric` over the last ten minutes, with the `Stack` dimension and,
    /// for `JobsFinished`, `Outcome`; `None` when no value was published.
    fn stat(
        &self,
        fx: &Fixture,
        metric: &str,
        outcome: Option<&str>,
        statistic: &Statistic,
    ) -> Option<f64> {
        let mut dimensions = vec![dim("Stack", &self.stack)];
        if let Some(outcome) = outcome {
            dimensions.push(dim("Outcome", outcome));
        }
        let now = SystemTime::now();
        let answer = fx
            .block_on(
                self.client
                    .get_metric_statistics()
                    .namespace(NAMESPACE)
                    .metric_name(metric)
                    .set_dimensions(Some(dimensions))
                    .start_time(DateTime::from(now - Duration::from_secs(600)))
                    .end_time(DateTime::from(now + Duration::from_secs(60)))
                    .period(3600)
                    .statistics(statistic.clone())
                    .send(),
            )
            .unwrap_or_else(|e| panic!("GetMetricStatistics {metric}: {e:?}"));
        let points = answer.datapoints();
        if points.is_empty() {
            return None;
        }
        let values = points.iter().filter_map(|p| match statistic {
            Statistic::Sum => p.sum(),
            Statistic::SampleCount => p.sample_count(),
            Statistic::Minimum => p.minimum(),
            Statistic::Maximum => p.maximum(),
            _ => p.average(),
        });
        Some(match statistic {
            Statistic::Minimum => values.fold(f64::INFINITY, f64::min),
            Statistic::Maximum => values.fold(f64::NEG_INFINITY, f64::max),
            _ => values.sum(),
        })
    }

    /// Waits until the sum of `JobsFinished` for `outcome` is `expected`.
    fn wait_finished(&self, fx: &Fixture, outcome: &str, expected: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let sum = self.stat(fx, "JobsFinished", Some(outcome), &Statistic::Sum);
            if sum == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "JobsFinished {outcome} is {sum:?} in CloudWatch, not {expected}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The metric names published with this stack's dimension.
    fn names(&self, fx: &Fixture) -> Vec<String> {
        let answer = fx
            .block_on(
                self.client
                    .list_metrics()
                    .namespace(NAMESPACE)
                    .dimensions(
                        aws_sdk_cloudwatch::types::DimensionFilter::builder()
                            .name("Stack")
                            .value(&self.stack)
                            .build(),
                    )
                    .send(),
            )
            .expect("ListMetrics");
        let mut names: Vec<String> = answer
            .metrics()
            .iter()
            .filter_map(|m| m.metric_name().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn metrics_env(stack: &str, interval: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("EC2_SERVICE__METRICS__NAMESPACE", NAMESPACE.to_owned()),
        ("EC2_SERVICE__METRICS__STACK", stack.to_owned()),
        ("EC2_SERVICE__METRICS__INTERVAL_SECS", interval.to_owned()),
    ]
}

fn start(fx: &Fixture, env: &[(&'static str, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Daemon::start(fx, &moto().endpoint(), "", &env)
}

#[test]
fn job_metrics_reach_cloudwatch_by_outcome_with_the_queue_and_the_disk() {
    let fx = Fixture::new("cw-jobs");
    let stack = format!("pipe-{}", fx.source_bucket);
    let daemon = start(&fx, &metrics_env(&stack, "2"));
    let watch = Watch::new(&fx, &stack);

    let one = photo(640, 480);
    let two = photo(320, 240);
    let broken = b"this is not an image, whatever its name says".to_vec();
    fx.put_source("cw/one.jpg", &one);
    fx.put_source("cw/two.jpg", &two);
    fx.put_source("cw/broken.jpg", &broken);
    daemon.submit(&[
        fx.put_job("cw/one.jpg", None, None),
        fx.put_job("cw/two.jpg", None, None),
        fx.put_job("cw/broken.jpg", None, None),
    ]);
    fx.wait_status("cw/one.jpg", "DONE", WAIT);
    fx.wait_status("cw/two.jpg", "DONE", WAIT);
    fx.wait_status("cw/broken.jpg", "FAILED", WAIT);

    // Counted once each, by outcome, whichever publish carried them.
    watch.wait_finished(&fx, "done", 2.0);
    watch.wait_finished(&fx, "failed", 1.0);
    assert_eq!(
        watch.stat(&fx, "JobsFinished", Some("deleted"), &Statistic::Sum),
        Some(0.0),
        "an outcome with no job is published as 0"
    );
    // Every source downloaded, as a distribution whose sum is within 2% of the bytes.
    let bytes = (one.len() + two.len() + broken.len()) as f64;
    let sum = watch
        .stat(&fx, "SourceBytes", None, &Statistic::Sum)
        .expect("SourceBytes published");
    assert!(
        (sum - bytes).abs() <= bytes * 0.02,
        "SourceBytes {sum}, sent {bytes}"
    );
    assert_eq!(
        watch.stat(&fx, "SourceBytes", None, &Statistic::SampleCount),
        Some(3.0)
    );
    let renders = watch
        .stat(&fx, "RenderSeconds", None, &Statistic::SampleCount)
        .expect("RenderSeconds published");
    assert!(renders >= 2.0, "{renders} render times");
    // The gauges, sampled at each interval: nothing is left waiting now, the disk has room.
    let deadline = Instant::now() + WAIT;
    while watch.stat(&fx, "QueueDepth", None, &Statistic::Minimum) != Some(0.0) {
        assert!(Instant::now() < deadline, "QueueDepth never 0");
        std::thread::sleep(Duration::from_millis(250));
    }
    let free = watch
        .stat(&fx, "ScratchFreeBytes", None, &Statistic::Minimum)
        .expect("ScratchFreeBytes published");
    assert!(free > 1e6, "ScratchFreeBytes {free}");
    assert!(
        watch
            .stat(&fx, "OldestWaitingSeconds", None, &Statistic::Minimum)
            .is_some_and(|s| (0.0..WAIT.as_secs_f64()).contains(&s))
    );
    assert_eq!(
        watch.names(&fx),
        [
            "JobsFinished",
            "OldestWaitingSeconds",
            "QueueDepth",
            "RenderSeconds",
            "ScratchFreeBytes",
            "SourceBytes"
        ]
    );
    // And the daemon said where it publishes.
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("publishing the job metrics to CloudWatch") && l.contains(&stack)),
        "{:?}",
        daemon.logs()
    );
}

#[test]
fn what_finished_since_the_last_publish_is_sent_when_the_daemon_stops() {
    // A five-minute interval: nothing would be published before the stop.
    let fx = Fixture::new("cw-stop");
    let stack = format!("pipe-{}", fx.source_bucket);
    let mut daemon = start(&fx, &metrics_env(&stack, "300"));
    let watch = Watch::new(&fx, &stack);
    fx.put_source("cw/last.jpg", &photo(64, 48));
    daemon.submit(&[fx.put_job("cw/last.jpg", None, None)]);
    fx.wait_status("cw/last.jpg", "DONE", WAIT);
    assert_eq!(
        watch.stat(&fx, "JobsFinished", Some("done"), &Statistic::Sum),
        None,
        "published before its interval"
    );
    daemon.signal("TERM");
    assert!(daemon.wait(WAIT).success());
    watch.wait_finished(&fx, "done", 1.0);
}

#[test]
fn an_unreachable_cloudwatch_costs_no_job_and_its_counts_go_with_a_later_publish() {
    // The daemon's AWS endpoint (moto behind a proxy) is cut once its jobs are done, so
    // the publishes that follow fail; back up, the counts arrive once, none lost or doubled.
    let fx = Fixture::new("cw-outage");
    let stack = format!("pipe-{}", fx.source_bucket);
    let proxy = Proxy::start(moto().addr, true);
    let env = metrics_env(&stack, "1");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::start(&fx, &proxy.endpoint(), "", &env);
    let watch = Watch::new(&fx, &stack);
    fx.put_source("cw/a.jpg", &photo(64, 48));
    fx.put_source("cw/b.jpg", &photo(64, 48));
    daemon.submit(&[
        fx.put_job("cw/a.jpg", None, None),
        fx.put_job("cw/b.jpg", None, None),
    ]);
    fx.wait_status("cw/a.jpg", "DONE", WAIT);
    fx.wait_status("cw/b.jpg", "DONE", WAIT);
    // Cut between two publishes (they go at whole seconds): a PutMetricData that moto
    // stored but whose answer the cut lost would be sent again, counted twice, which no
    // client can tell from one that never arrived.
    halfway_between_publishes();
    proxy.set_up(false);
    daemon.wait_metric("ec2_service_cloudwatch_publish_failures_total", 2.0, WAIT);
    proxy.set_up(true);
    watch.wait_finished(&fx, "done", 2.0);
    // A few more publishes: still two.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        watch.stat(&fx, "JobsFinished", Some("done"), &Statistic::Sum),
        Some(2.0)
    );
}

/// Sleeps until half a second past a whole second of the epoch: the middle of a
/// 1-second publish interval.
fn halfway_between_publishes() {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let into = since.subsec_millis();
    let wait = (1500 - into) % 1000;
    std::thread::sleep(Duration::from_millis(u64::from(wait)));
}

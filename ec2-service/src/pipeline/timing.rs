//! Where a render's time goes: for each stage, the time summed over every thread that
//! worked on it (busy) and its wall time (how long at least one thread was in it, so
//! stages that overlap, such as the encode of one variant and the resize of the next,
//! each show their own time). Measuring only: no stage waits on the clock, and nothing
//! here decides anything.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The stages of a render, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Probe,
    Decode,
    Color,
    Orient,
    Resize,
    Watermark,
    Encode,
    /// EXIF, the source hash and the fingerprints (perceptual hash, BlurHash, color).
    Metadata,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Probe,
        Stage::Decode,
        Stage::Color,
        Stage::Orient,
        Stage::Resize,
        Stage::Watermark,
        Stage::Encode,
        Stage::Metadata,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Probe => "probe",
            Stage::Decode => "decode",
            Stage::Color => "color",
            Stage::Orient => "orient",
            Stage::Resize => "resize",
            Stage::Watermark => "watermark",
            Stage::Encode => "encode",
            Stage::Metadata => "metadata",
        }
    }
}

/// One duration per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerStage {
    #[serde(with = "millis")]
    pub probe: Duration,
    #[serde(with = "millis")]
    pub decode: Duration,
    #[serde(with = "millis")]
    pub color: Duration,
    #[serde(with = "millis")]
    pub orient: Duration,
    #[serde(with = "millis")]
    pub resize: Duration,
    #[serde(with = "millis")]
    pub watermark: Duration,
    #[serde(with = "millis")]
    pub encode: Duration,
    #[serde(with = "millis")]
    pub metadata: Duration,
}

impl PerStage {
    pub fn get(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Probe => self.probe,
            Stage::Decode => self.decode,
            Stage::Color => self.color,
            Stage::Orient => self.orient,
            Stage::Resize => self.resize,
            Stage::Watermark => self.watermark,
            Stage::Encode => self.encode,
            Stage::Metadata => self.metadata,
        }
    }

    fn slot(&mut self, stage: Stage) -> &mut Duration {
        match stage {
            Stage::Probe => &mut self.probe,
            Stage::Decode => &mut self.decode,
            Stage::Color => &mut self.color,
            Stage::Orient => &mut self.orient,
            Stage::Resize => &mut self.resize,
            Stage::Watermark => &mut self.watermark,
            Stage::Encode => &mut self.encode,
            Stage::Metadata => &mut self.metadata,
        }
    }
}

/// Timings of one render. The top-level stage fields are wall times (how long at least
/// one thread was in the stage); `busy` holds the same stages summed over threads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    #[serde(with = "millis")]
    pub probe: Duration,
    #[serde(with = "millis")]
    pub decode: Duration,
    #[serde(with = "millis")]
    pub color: Duration,
    #[serde(with = "millis")]
    pub orient: Duration,
    #[serde(with = "millis")]
    pub resize: Duration,
    #[serde(with = "millis")]
    pub watermark: Duration,
    #[serde(with = "millis")]
    pub encode: Duration,
    #[serde(with = "millis")]
    pub metadata: Duration,
    /// The whole render, wall time.
    #[serde(with = "millis")]
    pub total: Duration,
    /// Each stage's time summed over every thread that worked on it.
    pub busy: PerStage,
}

impl StageTimings {
    /// Wall times per stage.
    pub fn wall(&self) -> PerStage {
        PerStage {
            probe: self.probe,
            decode: self.decode,
            color: self.color,
            orient: self.orient,
            resize: self.resize,
            watermark: self.watermark,
            encode: self.encode,
            metadata: self.metadata,
        }
    }
}

/// Collects stage spans from any number of threads during one render (a few dozen).
#[derive(Debug)]
pub(crate) struct Clock {
    origin: Instant,
    spans: Mutex<Vec<(Stage, u64, u64)>>,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
            spans: Mutex::new(Vec::with_capacity(32)),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `work` as part of `stage`.
    pub fn time<T>(&self, stage: Stage, work: impl FnOnce() -> T) -> T {
        let start = self.now();
        let out = work();
        let end = self.now();
        if let Ok(mut spans) = self.spans.lock() {
            spans.push((stage, start, end));
        }
        out
    }

    pub fn finish(&self) -> StageTimings {
        let mut busy = PerStage::default();
        let mut wall = PerStage::default();
        let mut spans = self.spans.lock().map(|s| s.clone()).unwrap_or_default();
        spans.sort_by_key(|&(_, start, _)| start);
        for stage in Stage::ALL {
            let (mut busy_ns, mut wall_ns) = (0u64, 0u64);
            // The union of the stage's spans: merged in order of their start.
            let mut open: Option<(u64, u64)> = None;
            for &(_, start, end) in spans.iter().filter(|s| s.0 == stage) {
                busy_ns += end - start;
                open = match open {
                    Some((s, e)) if start <= e => Some((s, e.max(end))),
                    Some((s, e)) => {
                        wall_ns += e - s;
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
            }
            if let Some((s, e)) = open {
                wall_ns += e - s;
            }
            *busy.slot(stage) = Duration::from_nanos(busy_ns);
            *wall.slot(stage) = Duration::from_nanos(wall_ns);
        }
        StageTimings {
            probe: wall.probe,
            decode: wall.decode,
            color: wall.color,
            orient: wall.orient,
            resize: wall.resize,
            watermark: wall.watermark,
            encode: wall.encode,
            metadata: wall.metadata,
            total: self.origin.elapsed(),
            busy,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e4).round() / 10.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_sums_threads_and_wall_spans_them() {
        let clock = Clock::new();
        let pause = Duration::from_millis(20);
        let both = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    clock.time(Stage::Resize, || {
                        both.wait();
                        std::thread::sleep(pause);
                    });
                });
            }
        });
        // Then the same stage again later, alone: its wall time counts, the gap not.
        std::thread::sleep(pause);
        clock.time(Stage::Resize, || std::thread::sleep(pause));
        let t = clock.finish();
        // Two threads slept 20 ms each side by side, then one 20 ms: 60 ms busy, about
        // 40 ms of wall time in the stage (never the 60 ms the render has lasted by then).
        assert!(t.busy.resize >= 3 * pause, "{t:?}");
        assert!(t.resize >= 2 * pause && t.resize < t.busy.resize, "{t:?}");
        assert!(
            t.resize < t.total - pause / 2,
            "the gap is not counted: {t:?}"
        );
        assert_eq!(t.encode, Duration::ZERO);
        assert!(t.total >= t.resize);
    }
}

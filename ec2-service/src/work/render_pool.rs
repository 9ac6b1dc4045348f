//! Where the CPU work runs: [`pipeline::render`] on a dedicated, bounded rayon pool, never
//! on the tokio or actix threads, admitted through a memory budget.
//!
//! Each source first takes a share of the budget (`[server] memory_budget_bytes`) sized
//! from its size and its header (the source bytes plus [`pipeline::memory_estimate`] for
//! the recipe, the whole capped at the budget), *before* it is read into memory:
//! a few huge photos wait for each other instead of running the box out of memory, while
//! small ones keep flowing. The share is held until the render has finished.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::pipeline::{self, Limits, PipelineError, Recipe, Rendered, Watermark};

/// What a render needs besides the bytes; replaced as a whole on SIGHUP.
#[derive(Debug)]
pub struct RenderSettings {
    pub recipe: Recipe,
    pub limits: Limits,
    pub watermark: Option<Watermark>,
}

/// Renders waiting in the pool's queue for a thread, besides one per thread.
const QUEUED_RENDERS: usize = 1;

/// Budget permits are counted in MiB.
const MIB: u64 = 1 << 20;

/// The rendering pool.
#[derive(Debug)]
pub struct RenderPool {
    pool: rayon::ThreadPool,
    /// One permit per render running or queued: as many as threads, plus one source in
    /// memory and queued, so that a thread that finishes starts the next render at once
    /// (without it, each render waited for the previous job's task to wake and hand the
    /// slot on). Jobs waiting on S3 hold none, so the pool renders whichever source is
    /// ready.
    slots: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    budget_mib: u32,
}

/// Why a render could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the rendering pool went away")]
    PoolGone,
}

impl RenderPool {
    pub fn new(threads: usize, memory_budget_bytes: u64) -> std::io::Result<RenderPool> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("render-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        let budget_mib = (memory_budget_bytes / MIB).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        Ok(RenderPool {
            pool,
            slots: Arc::new(Semaphore::new(threads.max(1) + QUEUED_RENDERS)),
            budget: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
        })
    }

    /// The share of the budget a source of `source_len` bytes takes, in MiB, from the
    /// first bytes of the file (`header`, the whole source when it is small). When the
    /// header does not say (a JPEG whose metadata comes before its frame header fills the
    /// whole chunk), the most one decode may take under the limits is assumed.
    pub fn cost_mib(&self, header: &[u8], source_len: u64, settings: &RenderSettings) -> u32 {
        let limits = &settings.limits;
        let decoded = match pipeline::probe::probe(header, limits) {
            Ok(probe) => pipeline::memory_estimate(&probe, &settings.recipe, limits),
            // The whole source is refused from its header: nothing will be decoded.
            Err(_) if header.len() as u64 >= source_len => 0,
            Err(_) => limits.max_decode_bytes,
        };
        let bytes = decoded + source_len;
        (bytes.div_ceil(MIB) as u32).clamp(1, self.budget_mib)
    }

    /// Waits until `mib` of the budget is free and takes it, until the reservation drops.
    pub async fn reserve(&self, mib: u32) -> Result<Reservation, RenderError> {
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(mib.clamp(1, self.budget_mib))
            .await
            .map_err(|_| RenderError::PoolGone)?;
        Ok(Reservation { _permit: permit })
    }

    /// Waits for a render slot (one per thread, plus [`QUEUED_RENDERS`]); held until the
    /// render is done.
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit, RenderError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RenderError::PoolGone)
    }

    /// Bytes of the budget reserved right now.
    pub fn reserved_bytes(&self) -> u64 {
        u64::from(self.budget_mib).saturating_sub(self.budget.available_permits() as u64) * MIB
    }

    /// The whole budget, in bytes.
    pub fn budget_bytes(&self) -> u64 {
        u64::from(self.budget_mib) * MIB
    }

    /// Renders `source` on the pool; `_reservation` is the share of the budget it holds.
    pub async fn render(
        &self,
        _reservation: &Reservation,
        source: Arc<Vec<u8>>,
        settings: Arc<RenderSettings>,
    ) -> Result<Rendered, RenderError> {
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            let result = pipeline::render(
                &source,
                &settings.recipe,
                &settings.limits,
                settings.watermark.as_ref(),
            );
            let _ = tx.send(result);
        });
        Ok(rx.await.map_err(|_| RenderError::PoolGone)??)
    }
}

/// A share of the memory budget, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::encode::encode;
    use crate::pipeline::{Layout, OutputFormat, Raster};

    #[tokio::test]
    async fn one_render_waits_queued_beside_each_thread_and_no_more() {
        let pool = RenderPool::new(1, 64 * MIB).unwrap();
        let running = pool.slot().await.unwrap();
        // The next source is handed to the pool while the first renders, so the thread
        // starts it the moment it is free.
        let queued = tokio::time::timeout(std::time::Duration::from_millis(50), pool.slot())
            .await
            .expect("a second slot on a one-thread pool: one render queued")
            .unwrap();
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), pool.slot());
        assert!(
            third.await.is_err(),
            "a third source must wait, in memory only once it may run soon"
        );
        drop(running);
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), pool.slot());
        assert!(third.await.is_ok(), "a slot freed is taken at once");
        drop(queued);
    }

    #[tokio::test]
    async fn renders_off_the_async_threads_and_charges_the_budget_first() {
        let raster = Raster::new(64, 48, Layout::Rgb, vec![128; 64 * 48 * 3]);
        let jpeg = encode(&raster, OutputFormat::Jpeg, 90, [255, 255, 255]).unwrap();
        let pool = RenderPool::new(2, 256 * MIB).unwrap();
        let len = jpeg.len() as u64;
        let settings = |limits: Limits| RenderSettings {
            recipe: Recipe::default(),
            limits,
            watermark: None,
        };
        let standard = settings(Limits::default());
        // A tiny image costs the render's fixed part (encoders, buffers) and little more.
        let tiny = pool.cost_mib(&jpeg, len, &standard);
        assert!((20..=30).contains(&tiny), "{tiny} MiB");
        // The source's own bytes count: a 40 MiB file with a tiny image costs 40 MiB more.
        assert_eq!(
            pool.cost_mib(&jpeg, 40 * MIB, &standard),
            pool.cost_mib(&jpeg, len, &standard) + 40
        );
        let huge = settings(Limits {
            max_decode_bytes: 1 << 40,
            max_pixels: 1 << 40,
            ..Limits::default()
        });
        let mut bomb = jpeg.clone();
        // A header claiming 30000x30000 costs the whole budget, never more.
        let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bomb[sof + 5..sof + 9].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]);
        let estimate = pool.cost_mib(&bomb, len, &huge);
        assert!(
            estimate > 100,
            "{estimate} MiB: a 900 MP header is not cheap"
        );
        let small_pool = RenderPool::new(1, 64 * MIB).unwrap();
        assert_eq!(small_pool.cost_mib(&bomb, len, &huge), 64);
        // A header chunk that does not say is charged the most a decode may take.
        let small = settings(Limits {
            max_decode_bytes: 20 * MIB,
            ..Limits::default()
        });
        assert_eq!(pool.cost_mib(&jpeg[..2], 5 * MIB, &small), 25);

        let first = pool.reserve(200).await.unwrap();
        assert_eq!(pool.reserved_bytes(), 200 * MIB);
        let second = tokio::time::timeout(std::time::Duration::from_millis(50), pool.reserve(100));
        assert!(
            second.await.is_err(),
            "100 more MiB must wait for the first 200"
        );
        drop(first);
        assert_eq!(pool.reserved_bytes(), 0);

        let settings = Arc::new(RenderSettings {
            recipe: Recipe::default(),
            limits: Limits::default(),
            watermark: None,
        });
        let reservation = pool.reserve(1).await.unwrap();
        let rendered = pool
            .render(&reservation, Arc::new(jpeg), settings.clone())
            .await
            .unwrap();
        assert_eq!(rendered.variants.len(), 3);
        let error = pool
            .render(&reservation, Arc::new(b"not an image".to_vec()), settings)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RenderError::Pipeline(ref e) if e.code() == "unsupported-format"),
            "{error}"
        );
    }
}

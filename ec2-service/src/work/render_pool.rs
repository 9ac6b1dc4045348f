//! Where the CPU work runs: [`pipeline::render`] on a dedicated, bounded rayon pool, never
//! on the tokio or actix threads, admitted through a memory budget.
//!
//! Each render first takes a share of the budget (`[server] memory_budget_bytes`) sized
//! from the source's header (pixels x 4 bytes plus the source, capped at the decode
//! limit and at the whole budget), so that a few huge photos wait for each other instead of
//! running the box out of memory while small ones keep flowing.

use std::sync::Arc;

use tokio::sync::{Semaphore, oneshot};

use crate::pipeline::{self, Limits, PipelineError, Recipe, Rendered, Watermark};

/// What a render needs besides the bytes; replaced as a whole on SIGHUP.
#[derive(Debug)]
pub struct RenderSettings {
    pub recipe: Recipe,
    pub limits: Limits,
    pub watermark: Option<Watermark>,
}

/// Budget permits are counted in MiB.
const MIB: u64 = 1 << 20;

/// The rendering pool.
#[derive(Debug)]
pub struct RenderPool {
    pool: rayon::ThreadPool,
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
            budget: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
        })
    }

    /// The share of the budget a source takes, in MiB.
    pub fn cost_mib(&self, source: &[u8], limits: &Limits) -> u32 {
        let decoded = match pipeline::probe::probe(source, limits) {
            Ok(probe) => {
                (u64::from(probe.width) * u64::from(probe.height) * 4).min(limits.max_decode_bytes)
            }
            // Refused from the header: the render fails before decoding anything.
            Err(_) => 0,
        };
        let bytes = decoded + source.len() as u64;
        (bytes.div_ceil(MIB) as u32).clamp(1, self.budget_mib)
    }

    /// Renders `source` once its share of the budget is free.
    pub async fn render(
        &self,
        source: Arc<Vec<u8>>,
        settings: Arc<RenderSettings>,
    ) -> Result<Rendered, RenderError> {
        let cost = self.cost_mib(&source, &settings.limits);
        let _permit = self
            .budget
            .acquire_many(cost)
            .await
            .map_err(|_| RenderError::PoolGone)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::encode::encode;
    use crate::pipeline::{Layout, OutputFormat, Raster};

    #[tokio::test]
    async fn renders_off_the_async_threads_and_charges_the_budget() {
        let raster = Raster::new(64, 48, Layout::Rgb, vec![128; 64 * 48 * 3]);
        let jpeg = encode(&raster, OutputFormat::Jpeg, 90, [255, 255, 255]).unwrap();
        let pool = RenderPool::new(2, 64 * MIB).unwrap();
        assert_eq!(pool.cost_mib(&jpeg, &Limits::default()), 1);
        let huge = Limits {
            max_decode_bytes: 1 << 40,
            max_pixels: 1 << 40,
            ..Limits::default()
        };
        let mut bomb = jpeg.clone();
        // A header claiming 30000x30000 costs the whole budget, never more.
        let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bomb[sof + 5..sof + 9].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]);
        assert_eq!(pool.cost_mib(&bomb, &huge), 64);

        let settings = Arc::new(RenderSettings {
            recipe: Recipe::default(),
            limits: Limits::default(),
            watermark: None,
        });
        let rendered = pool.render(Arc::new(jpeg), settings.clone()).await.unwrap();
        assert_eq!(rendered.variants.len(), 3);
        let error = pool
            .render(Arc::new(b"not an image".to_vec()), settings)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RenderError::Pipeline(ref e) if e.code() == "unsupported-format"),
            "{error}"
        );
    }
}

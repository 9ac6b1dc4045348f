//! SIGHUP: re-read the configuration; the recipe, limits, watermark and log level take
//! effect for the jobs that start from now on, and parked jobs are retried (the operator
//! has fixed what parked them). Other sections need a restart, and the log says which.

use std::path::Path;

use super::systemd::Notifier;
use super::telemetry::LogHandle;
use crate::settings::Settings;
use crate::work::Context;
use crate::work::render_pool::RenderSettings;

/// SIGHUP: re-reads the configuration; the recipe, limits, watermark and log level take
/// effect for the jobs that start from now on. Other sections need a restart.
pub fn reload(
    config: Option<&Path>,
    current: Settings,
    ctx: &Context,
    log: Option<&LogHandle>,
    notifier: &Notifier,
) -> Settings {
    let loaded = Settings::load_for_cli(config)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.watermark
                .prepare()
                .map(|w| (s, w))
                .map_err(|e| e.to_string())
        });
    let (new, watermark) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the current configuration");
            return current;
        }
    };
    ctx.set_render_settings(RenderSettings {
        recipe: new.recipe.clone(),
        limits: new.limits.clone(),
        watermark,
    });
    if let Some(log) = log
        && let Err(e) = log.set_level(&new.log.level)
    {
        tracing::error!(error = %e, level = new.log.level, "cannot change the log level");
    }
    let restart_needed: Vec<&str> = [
        ("intake", current.intake != new.intake),
        ("server", current.server != new.server),
        ("admin", current.admin != new.admin),
        ("scratch", current.scratch != new.scratch),
        ("aws", current.aws != new.aws),
        ("signing", current.signing != new.signing),
        ("retry", current.retry != new.retry),
        ("log.format", current.log.format != new.log.format),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect();
    if !restart_needed.is_empty() {
        tracing::warn!(
            sections = restart_needed.join(", "),
            "these changes take effect only after a restart"
        );
    }
    let unparked = ctx.queue.unpark_all();
    tracing::info!(
        recipe = new.recipe.version,
        variants = new.recipe.variants.len(),
        log_level = new.log.level,
        unparked,
        "configuration reloaded"
    );
    notifier.status(&format!("serving; reloaded recipe {}", new.recipe.version));
    // Keep the sections that did not take effect, so the next reload compares with what
    // is really in force.
    Settings {
        recipe: new.recipe,
        limits: new.limits,
        watermark: new.watermark,
        log: crate::settings::LogSettings {
            level: new.log.level,
            format: current.log.format,
        },
        ..current
    }
}

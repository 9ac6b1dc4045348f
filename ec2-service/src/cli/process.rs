//! `ec2-service process --out DIR FILE...`: the recipe on local files, for an operator
//! trying a recipe on the box and for the benchmark. Files are rendered most expensive
//! first (estimated from the size and the header) on the rayon pool; each gets
//! `DIR/<file name>/` with its variants and `metadata.json`
//! (or `error.json`). Exits 1 if any file failed.

use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::pipeline::{
    self, Limits, Metadata, PerStage, PipelineError, Recipe, Rendered, Stage, StageTimings,
    Watermark,
};
use crate::settings::{DEFAULT_CONFIG_PATH, Settings};

use super::EXIT_USAGE;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Directory the outputs are written under (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Also print, per file and stage, the time summed over threads and the wall time.
    #[arg(long)]
    pub timings: bool,

    /// Source images (any supported format; decided by content, not name).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `metadata.json`: what the record will say, plus where the variants went.
#[derive(Debug, Serialize)]
struct SourceReport<'a> {
    source: String,
    recipe_version: &'a str,
    #[serde(flatten)]
    metadata: &'a Metadata,
    variants: Vec<VariantReport>,
    decode_scale: String,
    timings_ms: &'a StageTimings,
}

#[derive(Debug, Serialize)]
struct VariantReport {
    name: String,
    file: String,
    format: &'static str,
    width: u32,
    height: u32,
    bytes: usize,
    watermarked: bool,
}

#[derive(Debug, Serialize)]
struct ErrorReport<'a> {
    source: String,
    code: &'a str,
    message: String,
}

enum Outcome {
    Done(Box<Rendered>),
    Failed(PipelineError),
    Io(String),
}

struct Job {
    path: PathBuf,
    size: u64,
    /// Estimated CPU time (plan::estimated_cost).
    cost: u64,
    out_dir: PathBuf,
}

pub fn run(config: Option<&Path>, args: &ProcessArgs) -> i32 {
    let settings = match load_settings(config) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("ec2-service: {message}");
            return EXIT_USAGE;
        }
    };
    let watermark = match settings.watermark.prepare() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ec2-service: {e}");
            return EXIT_USAGE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("ec2-service: cannot create {}: {e}", args.out.display());
        return 1;
    }
    let jobs = plan_jobs(&args.files, &args.out, &settings.limits);
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(Outcome, f64)>>> =
        Mutex::new((0..total).map(|_| None).collect());
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();

    // One worker per pool thread pulls the next-largest file; the work inside a render
    // (decode beside hashing, parallel resize and encode) is stolen by idle threads, so
    // the last large file does not leave a core idle.
    rayon::scope(|scope| {
        for _ in 0..rayon::current_num_threads().min(total.max(1)) {
            scope.spawn(|_| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let t = Instant::now();
                    let outcome =
                        process_one(job, &settings.recipe, &settings.limits, watermark.as_ref());
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some((outcome, ms));
                    }
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if progress {
                        eprint!("\r\x1b[K[{n}/{total}] {}", display_name(&job.path));
                        let _ = std::io::stderr().flush();
                    }
                }
            });
        }
    });
    if progress {
        eprintln!();
    }
    let results = results.into_inner().unwrap_or_default();
    let status = print_summary(
        &jobs,
        &results,
        &settings.recipe,
        started.elapsed().as_secs_f64(),
    );
    if args.timings {
        print!("{}", timings_table(&jobs, &results));
    }
    status
}

/// `--timings`: one line per rendered file and a sum, each stage as `busy/wall` in ms
/// (busy: summed over the threads that worked on it; wall: while at least one was).
fn timings_table(jobs: &[Job], results: &[Option<(Outcome, f64)>]) -> String {
    let rendered: Vec<(String, &StageTimings)> = jobs
        .iter()
        .zip(results)
        .filter_map(|(job, r)| match r {
            Some((Outcome::Done(r), _)) => Some((display_name(&job.path), &r.timings)),
            _ => None,
        })
        .collect();
    let width = rendered
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(9, 48);
    let mut out = format!(
        "\nstage timings in ms, busy (summed over threads) / wall (at least one thread in the stage)\n{:width$}",
        "file"
    );
    for stage in Stage::ALL {
        out.push_str(&format!(" {:>13}", stage.name()));
    }
    out.push_str(&format!(" {:>9}\n", "total"));
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let cell = |busy: f64, wall: f64| format!(" {:>13}", format!("{busy:.1}/{wall:.1}"));
    let mut busy_sum = [0f64; 8];
    let mut wall_sum = [0f64; 8];
    let mut total_sum = 0f64;
    for (name, t) in &rendered {
        out.push_str(&format!("{name:width$}"));
        let (busy, wall): (PerStage, PerStage) = (t.busy, t.wall());
        for (i, stage) in Stage::ALL.into_iter().enumerate() {
            let (b, w) = (ms(busy.get(stage)), ms(wall.get(stage)));
            busy_sum[i] += b;
            wall_sum[i] += w;
            out.push_str(&cell(b, w));
        }
        total_sum += ms(t.total);
        out.push_str(&format!(" {:>9.1}\n", ms(t.total)));
    }
    out.push_str(&format!("{:width$}", format!("sum of {}", rendered.len())));
    for i in 0..Stage::ALL.len() {
        out.push_str(&cell(busy_sum[i], wall_sum[i]));
    }
    out.push_str(&format!(" {total_sum:>9.1}\n"));
    out
}

fn load_settings(config: Option<&Path>) -> Result<Settings, String> {
    let default = Path::new(DEFAULT_CONFIG_PATH);
    let (file, required) = match config {
        Some(path) => (Some(path), true),
        None if default.exists() => (Some(default), true),
        None => (None, false),
    };
    Settings::load(file, required, None).map_err(|e| e.to_string())
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Most expensive first; each source gets its own output directory named after the
/// file (with `-2`, `-3`... when two inputs share a name).
fn plan_jobs(files: &[PathBuf], out: &Path, limits: &Limits) -> Vec<Job> {
    let mut jobs: Vec<Job> = files
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            Job {
                size,
                cost: estimated_cost(path, size, limits),
                path: path.clone(),
                out_dir: PathBuf::new(),
            }
        })
        .collect();
    let mut used = HashSet::new();
    for job in &mut jobs {
        let base = display_name(&job.path).replace(['/', '\\'], "_");
        let mut name = base.clone();
        let mut n = 1;
        while !used.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
        job.out_dir = out.join(name);
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.cost));
    jobs
}

/// The render's estimated cost from the file's first bytes (the header probe); from its
/// size alone when they do not probe (a failure to come, or a header further in).
fn estimated_cost(path: &Path, size: u64, limits: &Limits) -> u64 {
    let mut head = Vec::new();
    let probe = std::fs::File::open(path)
        .and_then(|f| f.take(pipeline::probe::HEADER_BYTES).read_to_end(&mut head))
        .ok()
        .and_then(|_| pipeline::probe::probe(&head, limits).ok());
    pipeline::plan::estimated_cost(probe.as_ref(), size)
}

fn process_one(
    job: &Job,
    recipe: &Recipe,
    limits: &Limits,
    watermark: Option<&Watermark>,
) -> Outcome {
    // Refuse by size before reading the file into memory.
    if let Err(e) = limits.check_source_bytes(job.size) {
        return finish_failed(job, e);
    }
    let bytes = match std::fs::read(&job.path) {
        Ok(b) => b,
        Err(e) => return Outcome::Io(format!("cannot read {}: {e}", job.path.display())),
    };
    match pipeline::render(&bytes, recipe, limits, watermark) {
        Ok(rendered) => match write_outputs(job, recipe, &rendered) {
            Ok(()) => Outcome::Done(Box::new(rendered)),
            Err(e) => Outcome::Io(e),
        },
        Err(e) => finish_failed(job, e),
    }
}

fn finish_failed(job: &Job, error: PipelineError) -> Outcome {
    let report = ErrorReport {
        source: job.path.display().to_string(),
        code: error.code(),
        message: error.to_string(),
    };
    match write_json(&job.out_dir, "error.json", &report) {
        Ok(()) => Outcome::Failed(error),
        Err(e) => Outcome::Io(e),
    }
}

fn write_outputs(job: &Job, recipe: &Recipe, rendered: &Rendered) -> Result<(), String> {
    std::fs::create_dir_all(&job.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", job.out_dir.display()))?;
    let mut variants = Vec::new();
    for v in &rendered.variants {
        let file = format!("{}.{}", v.name, v.format.extension());
        let path = job.out_dir.join(&file);
        std::fs::write(&path, &v.bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        variants.push(VariantReport {
            name: v.name.clone(),
            file,
            format: v.format.name(),
            width: v.width,
            height: v.height,
            bytes: v.bytes.len(),
            watermarked: v.watermarked,
        });
    }
    let report = SourceReport {
        source: job.path.display().to_string(),
        recipe_version: &recipe.version,
        metadata: &rendered.metadata,
        variants,
        decode_scale: format!("{}/{}", rendered.decode_scale.0, rendered.decode_scale.1),
        timings_ms: &rendered.timings,
    };
    write_json(&job.out_dir, "metadata.json", &report)
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_summary(
    jobs: &[Job],
    results: &[Option<(Outcome, f64)>],
    recipe: &Recipe,
    wall: f64,
) -> i32 {
    let mut out = String::new();
    let mut failed = 0;
    let width = jobs
        .iter()
        .map(|j| display_name(&j.path).chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    for (job, result) in jobs.iter().zip(results) {
        let name = display_name(&job.path);
        let line = match result {
            Some((Outcome::Done(r), ms)) => {
                let m = &r.metadata;
                let sizes: Vec<String> = r
                    .variants
                    .iter()
                    .map(|v| format!("{} {}x{}", v.name, v.width, v.height))
                    .collect();
                format!(
                    "ok    {name:width$}  {:>5} {:>5}x{:<5} {:>7.0} ms  {}",
                    m.format.name(),
                    m.width,
                    m.height,
                    ms,
                    sizes.join(", ")
                )
            }
            Some((Outcome::Failed(e), _)) => {
                failed += 1;
                format!("FAIL  {name:width$}  {}: {e}", e.code())
            }
            Some((Outcome::Io(e), _)) => {
                failed += 1;
                format!("FAIL  {name:width$}  io-error: {e}")
            }
            None => {
                failed += 1;
                format!("FAIL  {name:width$}  internal-error: not processed")
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    let peak = peak_memory_mib()
        .map(|m| format!(", peak memory {m} MiB"))
        .unwrap_or_default();
    out.push_str(&format!(
        "{} files, {} ok, {} failed, recipe {}, {:.2} s{peak}\n",
        jobs.len(),
        jobs.len() - failed,
        failed,
        recipe.version,
        wall
    ));
    print!("{out}");
    if failed > 0 { 1 } else { 0 }
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

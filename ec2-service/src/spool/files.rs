//! The durable job store on the scratch disk: one JSON file per accepted, unfinished job.
//!
//! Layout under `[scratch] dir`:
//!
//! ```text
//! jobs/<id>.json     accepted and not finished (the source of truth after a crash)
//! tmp/               files being written; emptied on start
//! sources/<id>       a source being downloaded or rendered; emptied on start
//! ```
//!
//! A job is written to `tmp/`, fsynced, renamed into `jobs/`, and `jobs/` itself is
//! fsynced before the daemon answers 202: after that a `kill -9` or a power cut cannot lose
//! it. A job file is removed only once the job's record is written, so a crash in between
//! replays the job, and the record's conditions make the replay harmless.
//!
//! Blocking `std::fs` calls: callers run them on a blocking thread. This module knows
//! nothing of queues, HTTP or AWS.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::spool::job::Job;

/// Why the store could not read or write a job.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode job {id}: {source}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The job directory of one daemon.
#[derive(Debug, Clone)]
pub struct JobFiles {
    root: PathBuf,
    jobs: PathBuf,
    tmp: PathBuf,
    sources: PathBuf,
}

/// A job file that could not be read on start (left in place, renamed `*.bad`).
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

impl JobFiles {
    /// Opens (creating if needed) the store under `root`, empties `tmp/` and `sources/`,
    /// and returns every stored job, oldest first.
    pub fn open(root: &Path) -> Result<(JobFiles, Vec<Job>, Vec<Unreadable>), SpoolError> {
        let store = JobFiles {
            root: root.to_owned(),
            jobs: root.join("jobs"),
            tmp: root.join("tmp"),
            sources: root.join("sources"),
        };
        for dir in [&store.jobs, &store.tmp, &store.sources] {
            fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        }
        for dir in [&store.tmp, &store.sources] {
            for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
                let path = entry.map_err(io_error("list", dir))?.path();
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
            }
        }
        sync_dir(root)?;
        let mut jobs = Vec::new();
        let mut unreadable = Vec::new();
        for entry in fs::read_dir(&store.jobs).map_err(io_error("list", &store.jobs))? {
            let path = entry.map_err(io_error("list", &store.jobs))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<Job>(&bytes).map_err(|e| e.to_string()));
            match parsed {
                Ok(job) if store.job_path(&job.id) == path => jobs.push(job),
                Ok(job) => unreadable.push(Unreadable {
                    reason: format!("holds job {} under another name", job.id),
                    path,
                }),
                Err(reason) => {
                    let bad = path.with_extension("json.bad");
                    let _ = fs::rename(&path, &bad);
                    unreadable.push(Unreadable { path: bad, reason });
                }
            }
        }
        jobs.sort_by_key(|job| job.seq);
        Ok((store, jobs, unreadable))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a job's source is downloaded to.
    pub fn source_path(&self, id: &str) -> PathBuf {
        self.sources.join(id)
    }

    fn job_path(&self, id: &str) -> PathBuf {
        self.jobs.join(format!("{id}.json"))
    }

    /// Stores jobs durably: each file written and fsynced, renamed into place, then the
    /// directory fsynced once. On error, the files of this batch are removed again.
    pub fn persist(&self, jobs: &[Job]) -> Result<(), SpoolError> {
        let mut written: Vec<PathBuf> = Vec::with_capacity(jobs.len());
        let result = jobs.iter().try_for_each(|job| {
            let path = self.write_file(job)?;
            written.push(path);
            Ok(())
        });
        let result = result.and_then(|()| sync_dir(&self.jobs));
        if result.is_err() {
            for path in &written {
                let _ = fs::remove_file(path);
            }
        }
        result
    }

    /// Rewrites one job (after an attempt) durably.
    pub fn update(&self, job: &Job) -> Result<(), SpoolError> {
        self.write_file(job)?;
        sync_dir(&self.jobs)
    }

    /// Removes a finished job (and its source, if any). A crash before the removal
    /// reaches the disk replays the job, which its record makes harmless.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        let _ = fs::remove_file(self.source_path(id));
        let path = self.job_path(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    fn write_file(&self, job: &Job) -> Result<PathBuf, SpoolError> {
        let bytes = serde_json::to_vec(job).map_err(|source| SpoolError::Encode {
            id: job.id.clone(),
            source,
        })?;
        let tmp = self.tmp.join(format!("{}.json", job.id));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_error("create", &tmp))?;
        file.write_all(&bytes).map_err(io_error("write", &tmp))?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
        drop(file);
        let path = self.job_path(&job.id);
        fs::rename(&tmp, &path).map_err(io_error("rename", &tmp))?;
        Ok(path)
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync", dir))
}

/// Free bytes for an unprivileged user on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use pipeline_contract::{JobAction, JobRequest};

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ec2-service-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn job(key: &str) -> Job {
        Job::from_event(JobRequest {
            action: JobAction::Process,
            bucket: "b".into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: None,
            event_name: "ObjectCreated:Put".into(),
        })
    }

    #[test]
    fn persisted_jobs_come_back_in_order_and_removed_ones_do_not() {
        let dir = temp_dir("roundtrip");
        let (store, jobs, bad) = JobFiles::open(&dir).unwrap();
        assert!(jobs.is_empty() && bad.is_empty());
        let (a, b, c) = (job("a.jpg"), job("b b.jpg"), job("ü.jpg"));
        store.persist(&[a.clone(), b.clone()]).unwrap();
        store.persist(std::slice::from_ref(&c)).unwrap();
        store.remove(&b.id).unwrap();
        store.remove(&b.id).unwrap();
        let mut updated = a.clone();
        updated.attempts = 2;
        updated.last_error = Some("throttled".into());
        store.update(&updated).unwrap();
        fs::write(store.source_path(&a.id), b"partial").unwrap();
        fs::write(dir.join("tmp").join("x.json"), b"half").unwrap();
        fs::write(dir.join("jobs").join("broken.json"), b"{").unwrap();

        let (store, jobs, bad) = JobFiles::open(&dir).unwrap();
        assert_eq!(jobs, vec![updated, c]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].path.ends_with("broken.json.bad"));
        assert!(
            !store.source_path(&a.id).exists(),
            "stale downloads are removed"
        );
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        assert!(free_bytes(&dir).unwrap() > 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! A worker's result spool: `DATA_DIR/spool/RUN.TASK.ATTEMPT.result`, one file per attempt
//! result not yet acknowledged by the coordinator. A file is written to a temporary name,
//! fsynced and renamed (then the directory fsynced) before the result is sent, so a result
//! the worker sent once survives the worker's own crash; it is removed only on the
//! coordinator's acknowledgement, which comes once the result is durable in the journal.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::wire::{decode, encode, WireResult};
use crate::messages::scheduler::AttemptId;

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool under `data_dir` (created if missing).
    pub fn open(data_dir: &Path) -> std::io::Result<Spool> {
        let dir = data_dir.join("spool");
        std::fs::create_dir_all(&dir)?;
        Ok(Spool { dir })
    }

    fn path(&self, a: &AttemptId) -> PathBuf {
        self.dir
            .join(format!("{}.{}.{}.result", a.run, a.task, a.attempt))
    }

    /// Keeps `r` durably (see the module docs).
    pub fn put(&self, r: &WireResult) -> std::io::Result<()> {
        let bytes = encode(r).map_err(std::io::Error::other)?;
        let path = self.path(&r.attempt);
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Drops the result of `a` (acknowledged).
    pub fn remove(&self, a: &AttemptId) {
        let _ = std::fs::remove_file(self.path(a));
    }

    /// Every kept result, oldest file name first. A file that does not decode is renamed
    /// `*.damaged` and skipped (logged).
    pub fn all(&self) -> Vec<WireResult> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "result"))
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for p in paths {
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| decode::<WireResult>(&b))
            {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "a spooled result does not decode; set aside");
                    let _ = std::fs::rename(&p, p.with_extension("damaged"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::scheduler::{AttemptKind, AttemptOutcome};
    use crate::model::RunId;

    #[test]
    fn a_result_stays_until_removed_and_damage_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let a = AttemptId {
            run: RunId::from_u128(5),
            task: 2,
            kind: AttemptKind::Forward,
            attempt: 1,
        };
        let r = WireResult {
            node: "n".into(),
            epoch: 3,
            attempt: a,
            outcome: AttemptOutcome::Terminated { usage: None },
            log: b"hello".to_vec(),
        };
        spool.put(&r).unwrap();
        std::fs::write(dir.path().join("spool/bad.result"), b"\xff\xff").unwrap();
        let all = Spool::open(dir.path()).unwrap().all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].attempt, a);
        assert_eq!(all[0].log, b"hello");
        assert!(dir.path().join("spool/bad.damaged").exists());
        spool.remove(&a);
        assert!(spool.all().is_empty());
    }
}

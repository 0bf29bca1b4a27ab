//! `troupe bench control [--clients N] [--secs S] [--json]`: the control socket under load
//! ([`troupe::bench::control`]).

use std::path::{Path, PathBuf};

use troupe::bench::control::{control, ControlBenchOptions};

use crate::render::bench::print_control;

/// The options of `bench control`.
#[derive(clap::Args)]
pub(crate) struct ControlArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-control-<pid>.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Clients of the load phase: half readers, a quarter `events --follow`, a quarter
    /// submitters (at most 250, under the node's connection limit with the garbage and
    /// connect/drop clients).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds each phase's clients run.
    #[arg(long, default_value_t = 60.0)]
    secs: f64,
    /// The node's workers.
    #[arg(long, default_value_t = 8)]
    workers: u32,
}

impl ControlArgs {
    /// Checks the options (exit 2 when bad).
    pub(crate) fn check(&self) -> Result<(), String> {
        let limit = troupe::actors::control::MAX_CONNECTIONS - 6;
        if !(3..=limit).contains(&self.clients) {
            return Err(format!("--clients must be 3 to {limit}"));
        }
        if !(self.secs > 0.0 && self.secs.is_finite() && self.secs <= 86_400.0) {
            return Err("--secs must be positive (at most 86400)".into());
        }
        if self.workers == 0 || self.workers > troupe::config::MAX_WORKERS {
            return Err(format!(
                "--workers must be 1 to {}",
                troupe::config::MAX_WORKERS
            ));
        }
        Ok(())
    }

    /// Measures and prints.
    pub(crate) fn run(self, data_dir: &Path) -> anyhow::Result<()> {
        let dir = self.dir.unwrap_or_else(|| {
            troupe::layout::DataDir::new(data_dir).bench_dir("bench-control", std::process::id())
        });
        let mut opts = ControlBenchOptions::new(dir);
        opts.clients = self.clients;
        opts.duration = std::time::Duration::from_secs_f64(self.secs);
        opts.workers = self.workers;
        let rt = tokio::runtime::Runtime::new()?;
        let r = rt.block_on(control(&opts))?;
        if self.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            print_control(&r);
        }
        Ok(())
    }
}

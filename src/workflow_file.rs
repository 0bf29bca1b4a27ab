//! Reading workflow files (TOML, or JSON by their `.json` name) from disk.

use std::io::Read;
use std::path::Path;

use crate::model::parse::{too_large_message, WorkflowFormat, MAX_WORKFLOW_BYTES};
use crate::model::{SpecError, Workflow};

/// Reads, parses and validates the workflow file at `path`: JSON if its name ends in `.json`,
/// else TOML ([`WorkflowFormat::of_path`]).
///
/// Every error names the file (`path:line:column: message`). A file larger than
/// [`MAX_WORKFLOW_BYTES`] is refused from its size alone, before it is read.
pub fn load_workflow(path: &Path) -> Result<Workflow, SpecError> {
    let name = path.display().to_string();
    let read = || -> Result<Vec<u8>, SpecError> {
        let file = std::fs::File::open(path)
            .map_err(|e| SpecError::whole(format!("cannot read the file: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| SpecError::whole(format!("cannot read the file: {e}")))?;
        if meta.is_dir() {
            return Err(SpecError::whole("is a directory, not a workflow file"));
        }
        if meta.len() > MAX_WORKFLOW_BYTES as u64 {
            return Err(SpecError::whole(too_large_message(meta.len())));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // Read one byte past the cap in case the file grew after the size check.
        file.take(MAX_WORKFLOW_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| SpecError::whole(format!("cannot read the file: {e}")))?;
        Ok(bytes)
    };
    read()
        .and_then(|bytes| WorkflowFormat::of_path(path).parse_bytes(&bytes))
        .map_err(|e| e.with_source_name(name))
}

/// Reads a workflow file for submission: like [`load_workflow`], then every working
/// directory is made absolute against the file's folder (a task without `cwd` runs in the
/// folder itself), so the run does not depend on where the node was started.
pub fn load_for_submit(path: &Path) -> Result<Workflow, SpecError> {
    let workflow = load_workflow(path)?;
    let name = path.display().to_string();
    let folder = std::path::absolute(path)
        .map_err(|e| {
            SpecError::whole(format!("cannot resolve the path: {e}")).with_source_name(name.clone())
        })?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| "/".into());
    anchor(workflow, &folder).map_err(|e| e.with_source_name(name))
}

/// Makes every `cwd` of `workflow` absolute against `folder`; `[defaults] cwd` becomes
/// `folder` when unset.
pub fn anchor(workflow: Workflow, folder: &Path) -> Result<Workflow, SpecError> {
    let join = |cwd: Option<&str>| -> Result<String, SpecError> {
        let p = match cwd {
            Some(c) => folder.join(c),
            None => folder.to_path_buf(),
        };
        p.into_os_string().into_string().map_err(|p| {
            SpecError::whole(format!(
                "working directory {} is not valid UTF-8",
                Path::new(&p).display()
            ))
        })
    };
    let mut spec = workflow.spec().clone();
    spec.defaults.cwd = Some(join(spec.defaults.cwd.as_deref())?);
    for task in &mut spec.tasks {
        if let Some(c) = task.cwd.take() {
            task.cwd = Some(join(Some(&c))?);
        }
    }
    Workflow::from_spec(spec)
}

/// The workflow of `troupe spawn --command PROGRAM ARGS...`: one task, `main`, running
/// `argv` directly (no shell) in `cwd`, named `spawn: PROGRAM`. Its output is the run's.
pub fn command_workflow(argv: Vec<String>, cwd: &Path) -> Result<Workflow, SpecError> {
    use crate::model::{Command, TaskId, TaskSpec, WorkflowSpec};
    let program = argv
        .first()
        .ok_or_else(|| SpecError::whole("--command needs a program".to_owned()))?;
    let name = format!(
        "spawn: {}",
        Path::new(program)
            .file_name()
            .map_or(program.clone(), |n| n.to_string_lossy().into_owned())
    );
    let mut task = TaskSpec::new(
        TaskId::new("main").expect("a valid id"),
        Command::Argv(argv),
    );
    task.cwd = Some(cwd.to_string_lossy().into_owned());
    Workflow::from_spec(WorkflowSpec {
        name,
        max_concurrency: None,
        pools: Default::default(),
        defaults: Default::default(),
        tasks: vec![task],
        delegation: None,
        resilience: None,
        origin: None,
    })
}

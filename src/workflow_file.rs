//! Reading workflow files from disk.

use std::io::Read;
use std::path::Path;

use crate::model::parse::{parse_workflow_bytes, too_large_message, MAX_WORKFLOW_BYTES};
use crate::model::{SpecError, Workflow};

/// Reads, parses and validates the workflow file at `path`.
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
        .and_then(|bytes| parse_workflow_bytes(&bytes))
        .map_err(|e| e.with_source_name(name))
}

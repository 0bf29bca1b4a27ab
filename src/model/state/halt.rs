//! `node_halted` / `node_unhalted`: the node-wide halt flag (no attempt starts while set).

use super::error::ApplyError;
use super::State;

impl State {
    /// `node_halted`: sets the flag (already set: unchanged).
    pub(super) fn halt(&mut self) {
        self.halted = true;
    }

    /// `node_unhalted`: clears the flag; refused if the node is not halted.
    pub(super) fn unhalt(&mut self, name: &'static str) -> Result<(), ApplyError> {
        if !self.halted {
            return Err(ApplyError::NotAllowed {
                event: name,
                run: None,
                task: None,
                reason: "the node is not halted".into(),
            });
        }
        self.halted = false;
        Ok(())
    }
}

//! The actors of a troupe node, one file each; each is a thin shell around `model/` logic.
//!
//! # Layout
//! - [`journal`]: the journal writer: group commit of appends, snapshots.
//!
//! The rest of the tree in `../shared/DESIGN.md` (supervisor, scheduler, workers, approvals,
//! sagas, metrics, control) builds on this one.

pub mod journal;

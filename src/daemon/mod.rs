//! The long-lived service (`lifeboat daemon`): for now its [`runner`], the
//! one backup run shared by `lifeboat backup` and the scheduler, and the
//! [`rehearsal`] of each new archive.

pub mod rehearsal;
pub mod runner;

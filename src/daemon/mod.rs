//! The long-lived service (`lifeboat daemon`): for now its [`runner`], the
//! one backup run shared by `lifeboat backup` and the scheduler.

pub mod runner;

//! Watching the backups: `checks` decides healthy or not from the history
//! and the marker files only (no database, no network), for `lifeboat
//! check` (the Docker HEALTHCHECK) and later the daemon's `/healthz`.

pub mod checks;

//! The table of every HTTP route. Anything not listed here is 404, so no
//! path ever lists the storage directory.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use super::download::{self, Downloads};

/// `GET <public_url path>/{name}`: a signed archive download (FR-18).
pub fn router(downloads: Downloads) -> Router {
    let route = format!("{}/{{name}}", downloads.path_prefix);
    Router::new().route(&route, get(download::get)).fallback(download::not_found).with_state(Arc::new(downloads))
}

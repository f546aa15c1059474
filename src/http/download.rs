//! `GET <public_url path>/<archive-name>?expires=<unix>&sig=<hex>` (FR-18):
//! streams one archive of the storage directory to whoever holds a valid
//! link. The order of checks keeps the route from telling anyone which
//! files exist (SC-6.3): a name that is not an archive name is 404 for
//! everybody; for an archive name the signature is checked first (403,
//! 410) and only a valid link learns whether the file is there (404).
//! Every request is logged with the name, the outcome and the client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::deliver::links::{self, LinkError, LinkKey};

/// What the download route needs: where the archives are, which names are
/// archives, and the key links are signed with.
#[derive(Debug, Clone)]
pub struct Downloads {
    pub storage: PathBuf,
    pub name_prefix: String,
    /// With `[encryption] recipients` only `.tar.gz.age` copies are served.
    pub encrypted: bool,
    pub key: LinkKey,
    /// The path of `[links] public_url` (`/backups`), or empty.
    pub path_prefix: String,
}

impl Downloads {
    /// From the configuration: the link key is read (or generated once in
    /// the store) here, so a bad key is an error at start, not per request.
    pub fn from_config(config: &crate::config::Config) -> crate::Result<Downloads> {
        let path_prefix = config.links.path_prefix()?;
        let key = links::load_or_create_key(config.links.secret_file.as_deref(), &config.storage.dir)?;
        Ok(Downloads {
            storage: config.storage.dir.clone(),
            name_prefix: config.storage.name_prefix.clone(),
            encrypted: !config.encryption.recipients.is_empty(),
            key,
            path_prefix,
        })
    }

    /// Whether `name` may be served at all: an archive name of this store
    /// (`<prefix>_YYYYMMDD_HHMMSS.tar.gz`, or only its `.age` copy when
    /// encryption is on). No `/`, `..` or other file can ever match.
    fn servable(&self, name: &str) -> bool {
        match name.strip_suffix(".age") {
            Some(plain) => self.encrypted && crate::archive::is_archive_name(&self.name_prefix, plain),
            None => !self.encrypted && crate::archive::is_archive_name(&self.name_prefix, name),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

pub async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn log(name: &str, status: StatusCode, client: SocketAddr, bytes: Option<u64>) {
    // `{name:?}` quotes the name: a hostile one cannot forge log lines.
    match bytes {
        Some(b) => tracing::info!(archive = ?name, status = status.as_u16(), client = %client, bytes = b, "download"),
        None => tracing::info!(archive = ?name, status = status.as_u16(), client = %client, "download refused"),
    }
}

pub async fn get(
    State(d): State<Arc<Downloads>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let Ok(Path(name)) = name else {
        log("<undecodable>", StatusCode::NOT_FOUND, client, None);
        return not_found().await;
    };
    if !d.servable(&name) {
        log(&name, StatusCode::NOT_FOUND, client, None);
        return not_found().await;
    }
    let expires = query.get("expires").and_then(|e| e.parse::<i64>().ok());
    let checked = match (expires, query.get("sig")) {
        (Some(expires), Some(sig)) => {
            links::verify(&name, expires, sig, d.key.as_bytes(), chrono::Utc::now().timestamp())
        }
        _ => Err(LinkError::BadSignature),
    };
    match checked {
        Ok(()) => {}
        Err(LinkError::BadSignature) => {
            log(&name, StatusCode::FORBIDDEN, client, None);
            return text(StatusCode::FORBIDDEN, "forbidden: this download link is not valid\n");
        }
        Err(LinkError::Expired) => {
            log(&name, StatusCode::GONE, client, None);
            return text(StatusCode::GONE, "this download link has expired; ask the administrators for a new one\n");
        }
    }
    let path = d.storage.join(&name);
    // Regular files only: a symlink planted in the store is not followed.
    let regular = tokio::fs::symlink_metadata(&path).await.is_ok_and(|m| m.file_type().is_file());
    let file = match regular {
        true => tokio::fs::File::open(&path).await.ok(),
        false => None,
    };
    let Some(file) = file else {
        log(&name, StatusCode::NOT_FOUND, client, None);
        return not_found().await;
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => {
            tracing::warn!(archive = ?name, error = %e, "cannot read the archive's size");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "the archive cannot be read; see the server log\n");
        }
    };
    log(&name, StatusCode::OK, client, Some(len));
    let content_type = if name.ends_with(".age") { "application/octet-stream" } else { "application/gzip" };
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            // The name is an archive name: no quote or control character.
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

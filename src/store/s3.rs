//! The offsite copy on S3-compatible object storage, through `object_store`
//! (SigV4 signing, multipart upload, presigned URLs: none of it hand-written).
//!
//! `object_store` is async; the engine is not. [`RemoteStore`] owns a small
//! private current-thread tokio runtime and `block_on`s each request from
//! the calling (blocking) thread. It must never be called from a tokio
//! worker: the daemon reaches it through `spawn_blocking`, like the rest of
//! the engine (`block_on` inside a runtime panics, which is the guard).
//!
//! An upload streams the file in `[remote] part_size_mb` parts, one part in
//! memory at a time, hashing as it reads; afterwards the object's size is
//! checked against the file's and the SHA-256 is stored beside it as
//! `NAME.sha256` (`sha256sum -c` format). A failed attempt aborts its
//! multipart upload; [`ATTEMPTS`] attempts with back-off.
//!
//! [`RemoteStore`] is an [`Archives`] like the local store, so retention,
//! `list` and the offsite catch-up treat both alike. Also here: [`check`]
//! (`lifeboat plan`'s probe of `[remote]`) and [`remote_source`] (an
//! `s3://` argument of `verify` and `restore`).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, Signer};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use sha2::{Digest, Sha256};

use crate::config::{Config, RemoteConfig, RemoteUrl};
use crate::error::{Error, Result};
use crate::events::{Event, Progress};
use crate::store::{Archives, StoredArchive, Uploaded};

/// Upload attempts before the run is marked "not offsite".
pub const ATTEMPTS: u32 = 3;

/// The longest a SigV4 presigned URL may be valid.
pub const PRESIGN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// The suffix of the SHA-256 sidecar object.
pub const SHA_SUFFIX: &str = ".sha256";

/// A presigned GET URL and how long it is valid.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    pub valid_for: Duration,
    /// The asked-for validity was longer than [`PRESIGN_MAX`].
    pub capped: bool,
}

pub struct RemoteStore {
    store: Arc<AmazonS3>,
    rt: Arc<tokio::runtime::Runtime>,
    location: RemoteUrl,
    endpoint: String,
    part_size: usize,
    backoff: Duration,
    /// Secret values that must never reach a message, should a server echo them.
    hide: Vec<String>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteStore(s3://{}/{} at {})", self.location.bucket, self.location.prefix, self.endpoint)
    }
}

impl RemoteStore {
    /// The store `[remote]` names; `None` when `[remote] url` is unset.
    pub fn from_config(cfg: &RemoteConfig) -> Result<Option<RemoteStore>> {
        let Some(location) = cfg.location() else { return Ok(None) };
        // reqwest runs on rustls without a bundled provider: the project's
        // one crypto stack is ring (also for PostgreSQL TLS and SMTP).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = cfg.display_endpoint();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&cfg.region)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            )
            // Our own attempts (with back-off) wrap whole uploads; the
            // client's retries only smooth over a single flaky request.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
            });
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e.trim_end_matches('/'));
        }
        let mut hide = Vec::new();
        match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => {
                b = b.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
                hide.extend([id.expose().to_string(), secret.expose().to_string()]);
            }
            _ => b = b.with_skip_signature(true),
        }
        let store = b.build().map_err(|e| Error::Remote {
            doing: "cannot set up the offsite store".into(),
            object: location.object_url(""),
            endpoint: endpoint.clone(),
            message: e.to_string(),
            hint: "check [remote] url, endpoint and region".into(),
            retryable: false,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Failed(format!("cannot start the offsite store's I/O runtime: {e}")))?;
        Ok(Some(RemoteStore {
            store: Arc::new(store),
            rt: Arc::new(rt),
            location,
            endpoint,
            part_size: cfg.part_size_mb as usize * 1024 * 1024,
            backoff: Duration::from_secs(2),
            hide,
        }))
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn bucket(&self) -> &str {
        &self.location.bucket
    }

    /// `s3://bucket/prefix/NAME`.
    pub fn object_url(&self, name: &str) -> String {
        self.location.object_url(name)
    }

    fn path(&self, name: &str) -> ObjectPath {
        match self.location.prefix.as_str() {
            "" => ObjectPath::from(name),
            p => ObjectPath::from(format!("{p}/{name}")),
        }
    }

    fn err(&self, doing: &str, name: &str, e: object_store::Error) -> Error {
        let (hint, retryable) = match &e {
            object_store::Error::NotFound { .. } => (
                "check that the bucket and the object exist (`lifeboat list` shows the remote copies)",
                false,
            ),
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                ("check [remote] access_key_id / secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the key's permissions on the bucket", false)
            }
            _ => ("check that the endpoint is reachable and the bucket exists; `lifeboat plan` tests both", true),
        };
        let mut message = format!("{e}");
        for h in &self.hide {
            if !h.is_empty() {
                message = message.replace(h.as_str(), "***");
            }
        }
        Error::Remote {
            doing: doing.to_string(),
            object: self.object_url(name),
            endpoint: self.endpoint.clone(),
            message,
            hint: hint.to_string(),
            retryable,
        }
    }

    fn upload_once(&self, file: &Path, name: &str) -> Result<(u64, String)> {
        let mut f = std::fs::File::open(file).map_err(|e| Error::io("cannot open for the offsite upload", file, e))?;
        let size = f.metadata().map_err(|e| Error::io("cannot read", file, e))?.len();
        let path = self.path(name);
        let mut hasher = Sha256::new();
        let mut upload = self
            .rt
            .block_on(self.store.put_multipart(&path))
            .map_err(|e| self.err("cannot start uploading", name, e))?;
        let mut sent = 0u64;
        let result = loop {
            // One part in memory at a time: the bound whatever the archive's size.
            let mut buf = Vec::with_capacity(self.part_size);
            match (&mut f).take(self.part_size as u64).read_to_end(&mut buf) {
                Ok(0) if sent > 0 => break Ok(()),
                Ok(n) => {
                    hasher.update(&buf);
                    sent += n as u64;
                    if let Err(e) = self.rt.block_on(upload.put_part(PutPayload::from(Bytes::from(buf)))) {
                        break Err(self.err("cannot upload a part of", name, e));
                    }
                    if n == 0 {
                        break Ok(());
                    }
                }
                Err(e) => break Err(Error::io("cannot read for the offsite upload", file, e)),
            }
        };
        if let Err(e) = result {
            let _ = self.rt.block_on(upload.abort());
            return Err(e);
        }
        self.rt.block_on(upload.complete()).map_err(|e| self.err("cannot complete the upload of", name, e))?;
        let meta =
            self.rt.block_on(self.store.head(&path)).map_err(|e| self.err("cannot check the size of", name, e))?;
        if meta.size != size || sent != size {
            return Err(Error::Remote {
                doing: "the uploaded size does not match for".into(),
                object: self.object_url(name),
                endpoint: self.endpoint.clone(),
                message: format!("{} bytes stored, {size} bytes in {}", meta.size, file.display()),
                hint: "the next run uploads it again".into(),
                retryable: true,
            });
        }
        let sha256: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let sidecar = format!("{sha256}  {name}\n");
        self.rt
            .block_on(self.store.put(&self.path(&format!("{name}{SHA_SUFFIX}")), PutPayload::from(sidecar)))
            .map_err(|e| self.err("cannot store the SHA-256 of", name, e))?;
        Ok((size, sha256))
    }

    /// A presigned GET URL of `name`, valid for `ttl` capped at [`PRESIGN_MAX`].
    pub fn presigned_get(&self, name: &str, ttl: Duration) -> Result<Presigned> {
        let capped = ttl > PRESIGN_MAX;
        let valid_for = ttl.min(PRESIGN_MAX);
        let url = self
            .rt
            .block_on(self.store.signed_url(Method::GET, &self.path(name), valid_for))
            .map_err(|e| self.err("cannot presign a download link for", name, e))?;
        Ok(Presigned { url: url.to_string(), valid_for, capped })
    }

    /// Reachable and writable: lists the prefix (a missing bucket fails
    /// here: some stores create one on a PUT), then puts and deletes a
    /// small object under it.
    pub fn probe(&self) -> Result<()> {
        self.list()?;
        let name = format!(".lifeboat-probe-{}", std::process::id());
        let path = self.path(&name);
        self.rt
            .block_on(self.store.put(&path, PutPayload::from_static(b"lifeboat write probe\n")))
            .map_err(|e| self.err("cannot write a test object", &name, e))?;
        self.rt.block_on(self.store.delete(&path)).map_err(|e| self.err("cannot delete the test object", &name, e))
    }
}

impl Archives for RemoteStore {
    fn place(&self) -> String {
        self.object_url("")
    }

    fn url(&self, name: &str) -> String {
        self.object_url(name)
    }

    /// The archives under the prefix (not the sidecars), oldest name first.
    fn list(&self) -> Result<Vec<StoredArchive>> {
        let prefix = (!self.location.prefix.is_empty()).then(|| ObjectPath::from(self.location.prefix.as_str()));
        let metas = self.rt.block_on(async {
            let mut out = Vec::new();
            let mut s = self.store.list(prefix.as_ref());
            while let Some(m) = s.next().await {
                out.push(m?);
            }
            Ok::<_, object_store::Error>(out)
        });
        let metas = metas.map_err(|e| self.err("cannot list", "", e))?;
        let mut out: Vec<StoredArchive> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                // Only objects right under the prefix: another prefix below is not ours.
                (m.location == self.path(&name) && is_archive_name(&name))
                    .then_some(StoredArchive { name, bytes: m.size })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Uploads `file` as `name` (up to [`ATTEMPTS`] attempts with back-off).
    fn put(&self, file: &Path, name: &str, progress: Progress) -> Result<Uploaded> {
        let mut last = None;
        for attempt in 1..=ATTEMPTS {
            match self.upload_once(file, name) {
                Ok((bytes, sha256)) => {
                    return Ok(Uploaded { object: self.object_url(name), bytes, sha256, attempts: attempt });
                }
                Err(e) => {
                    if attempt < ATTEMPTS && e.is_retryable() {
                        let wait = self.backoff * 2u32.pow(attempt - 1);
                        progress(Event::Warning(format!(
                            "offsite upload attempt {attempt} of {ATTEMPTS} failed ({e}); trying again in {}s",
                            wait.as_secs_f32()
                        )));
                        std::thread::sleep(wait);
                        last = Some(e);
                    } else {
                        return Err(e.noted(format!("{attempt} attempt(s) made")));
                    }
                }
            }
        }
        Err(last.expect("at least one attempt").noted(format!("{ATTEMPTS} attempt(s) made")))
    }

    /// The SHA-256 recorded beside `name`, if any.
    fn sha256(&self, name: &str) -> Result<Option<String>> {
        let sidecar = format!("{name}{SHA_SUFFIX}");
        let got = self.rt.block_on(async { self.store.get(&self.path(&sidecar)).await?.bytes().await });
        match got {
            Ok(b) => Ok(String::from_utf8_lossy(&b).split_whitespace().next().map(str::to_string)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("cannot read", &sidecar, e)),
        }
    }

    /// The size of an object (a HEAD request); a missing one is an error
    /// that says to look at `lifeboat list`.
    fn size(&self, name: &str) -> Result<u64> {
        let meta = self.rt.block_on(self.store.head(&self.path(name))).map_err(|e| self.err("cannot read", name, e))?;
        Ok(meta.size)
    }

    /// Streams an archive: a blocking reader over the GET response, one
    /// chunk in memory at a time (no local copy first).
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let got = self.rt.block_on(self.store.get(&self.path(name))).map_err(|e| self.err("cannot read", name, e))?;
        Ok(Box::new(ObjectReader {
            rt: self.rt.clone(),
            stream: got.into_stream(),
            chunk: Bytes::new(),
            object: self.object_url(name),
        }))
    }

    /// Removes an archive and its SHA-256 sidecar.
    fn delete(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.store.delete(&self.path(name))).map_err(|e| self.err("cannot delete", name, e))?;
        let _ = self.rt.block_on(self.store.delete(&self.path(&format!("{name}{SHA_SUFFIX}"))));
        Ok(())
    }
}

/// `lifeboat plan`'s check of `[remote]`: the bucket is reachable and
/// writable (a small put + delete under the prefix). The line to show names
/// the credentials' source, never a key; `None` without `[remote]`.
pub fn check(config: &Config) -> Result<Option<String>> {
    let Some(remote) = RemoteStore::from_config(&config.remote)? else { return Ok(None) };
    remote.probe()?;
    Ok(Some(format!(
        "offsite: {} at {} is reachable and writable (credentials: {})",
        remote.object_url(""),
        remote.endpoint(),
        config.remote.credentials_source
    )))
}

/// The archive an `s3://bucket/prefix/NAME` argument names, read straight
/// from the store with the `[remote]` endpoint and credentials (FR-29.8).
/// The bucket must be the configured one (the credentials are for it); the
/// prefix may differ from `[remote] url`'s. The signature is checked as
/// for a local archive: against the configured store's key, `[restore]
/// trusted_keys` and `--trusted-key` (see `verify`).
pub fn remote_source(config: &Config, url: &str) -> Result<crate::archive::reader::Source> {
    let Some(configured) = config.remote.location() else {
        return Err(Error::Refused(format!(
            "{url} is in an S3 store, but no [remote] url is configured; set [remote] url (with endpoint and \
             credentials) in the config to read it, or download the archive and pass its path"
        )));
    };
    let wanted = RemoteUrl::parse(url).map_err(Error::Refused)?;
    if wanted.bucket != configured.bucket {
        return Err(Error::Refused(format!(
            "{url} is in bucket {:?}, but [remote] url is in bucket {:?}; the configured endpoint and \
             credentials are only for that one: pass an s3:// URL in it, or point [remote] at the other bucket",
            wanted.bucket, configured.bucket
        )));
    }
    let (prefix, name) = wanted.prefix.rsplit_once('/').unwrap_or(("", wanted.prefix.as_str()));
    if name.is_empty() {
        return Err(Error::Refused(format!(
            "{url} names no archive; expected s3://{}/PREFIX/NAME.tar.gz (`lifeboat list` shows the names)",
            wanted.bucket
        )));
    }
    let mut remote = config.remote.clone();
    remote.url = Some(format!("s3://{}/{prefix}", wanted.bucket));
    let store = RemoteStore::from_config(&remote)?.expect("the url was just set");
    let size = store.size(name)?;
    let name = name.to_string();
    let url = store.object_url(&name);
    let store = std::sync::Arc::new(store);
    Ok(crate::archive::reader::Source::Remote {
        url,
        size,
        open: std::sync::Arc::new(move || store.open(&name).map_err(|e| std::io::Error::other(e.to_string()))),
    })
}

/// `…tar.gz` or `…tar.gz.age`: what lifeboat uploads.
pub fn is_archive_name(name: &str) -> bool {
    name.ends_with(".tar.gz") || name.ends_with(".tar.gz.age")
}

/// A GET response as a blocking reader.
struct ObjectReader {
    rt: Arc<tokio::runtime::Runtime>,
    stream: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    object: String,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(std::io::Error::other(format!("reading {}: {e}", self.object))),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

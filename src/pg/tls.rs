//! TLS for lifeboat's own connections (rustls, through
//! `tokio-postgres-rustls`), with libpq's `sslmode` semantics:
//!
//! | mode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` | if the server offers it | no |
//! | `require` | always (never falls back to plain text) | only when `sslrootcert` is set, as libpq |
//! | `verify-ca` | always | chain to `sslrootcert`, any host name |
//! | `verify-full` | always | chain and host name |
//!
//! `sslrootcert` defaults to `~/.postgresql/root.crt` for the verify modes,
//! as in libpq; `sslcert` + `sslkey` add a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{SslMode, Tls};
use crate::error::{Error, Result};

/// What a connection needs: the driver's mode and, unless disabled, a
/// connector.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    Rustls(MakeRustlsConnect),
}

impl Connector {
    /// Builds the connector for `tls` (reading its certificate files).
    pub(crate) fn new(tls: &Tls) -> Result<Connector> {
        if tls.mode == SslMode::Disable {
            return Ok(Connector::Plain);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Invalid(format!("TLS setup failed: {e}")))?;
        let rootcert = match (tls.mode, &tls.rootcert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(default_rootcert(tls.mode)?),
            (_, r) => r.clone(),
        };
        let webpki = match &rootcert {
            None => None,
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path, "sslrootcert")? {
                    roots.add(cert).map_err(|e| file_err("sslrootcert", path, e))?;
                }
                let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| file_err("sslrootcert", path, e))?;
                Some(verifier)
            }
        };
        let verifier = Arc::new(Verifier { webpki, check_name: tls.mode == SslMode::VerifyFull, provider });
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let config = match (&tls.cert, &tls.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certs = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("sslkey", key, e))?;
                builder.with_client_auth_cert(certs, key).map_err(|e| file_err("sslcert", cert, e))?
            }
            _ => {
                return Err(invalid("a client certificate needs both sslcert and sslkey; set both, or neither".into()))
            }
        };
        Ok(Connector::Rustls(MakeRustlsConnect::new(config)))
    }

    /// Connects; the connection's task (to spawn) is returned as a boxed
    /// future, the same type whatever the stream.
    pub(crate) async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(tokio_postgres::Client, ConnectionTask), tokio_postgres::Error> {
        fn task<F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static>(conn: F) -> ConnectionTask {
            Box::pin(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                }
            })
        }
        match self {
            Connector::Plain => config.connect(NoTls).await.map(|(c, conn)| (c, task(conn))),
            Connector::Rustls(tls) => config.connect(tls.clone()).await.map(|(c, conn)| (c, task(conn))),
        }
    }

    /// Asks the server to cancel the running query over the same kind of
    /// connection.
    pub(crate) async fn cancel_query(&self, token: &tokio_postgres::CancelToken) -> Result<(), tokio_postgres::Error> {
        match self {
            Connector::Plain => token.cancel_query(NoTls).await,
            Connector::Rustls(tls) => token.cancel_query(tls.clone()).await,
        }
    }
}

/// A connection's background task.
pub(crate) type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) fn driver_mode(mode: SslMode) -> DriverSslMode {
    match mode {
        SslMode::Disable => DriverSslMode::Disable,
        SslMode::Prefer => DriverSslMode::Prefer,
        // The driver's Require never falls back to plain text; the
        // verification is the connector's.
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
    }
}

/// libpq's default root certificate file.
fn default_rootcert(mode: SslMode) -> Result<PathBuf> {
    let path = std::env::var_os("HOME").map(|h| Path::new(&h).join(".postgresql/root.crt"));
    match path {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(invalid(format!(
            "sslmode={} needs the CA certificate that signed the server's certificate: set sslrootcert \
             (PGSSLROOTCERT, [database] sslrootcert or ?sslrootcert= in the URL) to its PEM file",
            mode.as_str()
        ))),
    }
}

/// A TLS setting that cannot work: a configuration error (exit 2).
fn invalid(message: String) -> Error {
    Error::Config(crate::config::ConfigError::Invalid(message))
}

fn file_err(key: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    invalid(format!("{key} {}: {e}; it must be a readable PEM file", path.display()))
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(key, path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| file_err(key, path, e))?;
    if certs.is_empty() {
        return Err(file_err(key, path, "no certificate found"));
    }
    Ok(certs)
}

/// `verify-ca` and `verify-full` (`webpki` set): the chain must lead to a
/// configured root, and `verify-ca` forgives a certificate that names
/// another host. `prefer` and `require` without `sslrootcert` (no `webpki`,
/// libpq's behaviour): encrypted, any certificate accepted. The handshake
/// signatures are always checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

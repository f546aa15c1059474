//! TLS to PostgreSQL against real servers with `ssl = on` and a CA made in
//! the test (rcgen): every sslmode, URL / config / PGSSL* settings, wrong CA
//! and wrong host name, client certificates, no silent plain-text fallback,
//! and a backup (pg_dump included) and restore through a server that
//! accepts only TLS.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

use crate::support::{self, lifeboat, toml_string, Cluster};
use crate::support::{assert_exit, json, stderr};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    Ca { cert: p.self_signed(&key).unwrap(), key }
}

/// `(certificate PEM, key PEM)` signed by `ca`.
fn leaf(ca: &Ca, cn: &str, sans: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, &ca.cert, &ca.key).unwrap().pem(), key.serialize_pem())
}

/// Files a client needs, in a temp dir.
struct ClientFiles {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    wrong_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Turns TLS on in `cluster` with a certificate for `localhost` only,
/// signed by a fresh CA, which also signs a client certificate for
/// `certuser`.
fn enable_tls(cluster: &Cluster) -> ClientFiles {
    let ca = ca("lifeboat test CA");
    let (server_cert, server_key) = leaf(&ca, "localhost", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf(&ca, "certuser", &[], ExtendedKeyUsagePurpose::ClientAuth);
    cluster.install_file("server.crt", server_cert.as_bytes(), 0o600);
    cluster.install_file("server.key", server_key.as_bytes(), 0o600);
    cluster.install_file("ca.crt", ca.cert.pem().as_bytes(), 0o600);
    cluster.append_conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'");
    cluster.reload();

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    };
    ClientFiles {
        ca: write("ca.pem", &ca.cert.pem()),
        wrong_ca: write("other-ca.pem", &self::ca("another CA").cert.pem()),
        cert: write("client.crt", &client_cert),
        key: write("client.key", &client_key),
        _dir: dir,
    }
}

/// A cluster with TLS on; plain connections are accepted too (for setup),
/// and `certuser` must present a client certificate.
fn tls_cluster() -> &'static (Cluster, ClientFiles) {
    static CLUSTER: OnceLock<(Cluster, ClientFiles)> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start();
        let files = enable_tls(&cluster);
        support::connect(&cluster.url("postgres")).batch_execute("CREATE ROLE certuser LOGIN").unwrap();
        cluster
            .set_hba("local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhost all all 127.0.0.1/32 trust\n");
        (cluster, files)
    })
}

fn url(host: &str, port: u16, user: &str, query: &str) -> String {
    format!("postgres://{user}@{host}:{port}/postgres?{query}")
}

fn plan(database_url: &str) -> Output {
    lifeboat().args(["plan", "--database-url", database_url]).output().unwrap()
}

fn q(p: &Path) -> String {
    // Paths of temp dirs need no escaping in a query string.
    p.display().to_string()
}

// covers: FR-11.4, FR-28.1, FR-28.2, FR-28.3
#[test]
fn verify_full_checks_the_ca_and_the_host_name_and_verify_ca_only_the_ca() {
    let (cluster, f) = tls_cluster();
    let port = cluster.port();

    let o = plan(&url("localhost", port, "postgres", &format!("sslmode=verify-full&sslrootcert={}", q(&f.ca))));
    assert_exit(&o, 0);

    let o = plan(&url("localhost", port, "postgres", &format!("sslmode=verify-full&sslrootcert={}", q(&f.wrong_ca))));
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("certificate") && err.contains("signed by the CA in sslrootcert"), "wrong CA:\n{err}");

    // The certificate names localhost, not 127.0.0.1.
    let o = plan(&url("127.0.0.1", port, "postgres", &format!("sslmode=verify-full&sslrootcert={}", q(&f.ca))));
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("not valid for name") && err.contains("name the host"), "wrong host:\n{err}");

    // verify-ca forgives the name, through [database] keys in the file.
    let d = tempfile::tempdir().unwrap();
    let config = support::write_config(
        d.path(),
        &format!(
            "[database]\nhost = \"127.0.0.1\"\nport = {port}\nsslmode = \"verify-ca\"\nsslrootcert = {}\n",
            toml_string(&q(&f.ca))
        ),
    );
    let o = lifeboat().args(["--config", config.to_str().unwrap(), "plan"]).output().unwrap();
    assert_exit(&o, 0);
    // ... but not a wrong CA.
    let config = support::write_config(
        d.path(),
        &format!(
            "[database]\nhost = \"127.0.0.1\"\nport = {port}\nsslmode = \"verify-ca\"\nsslrootcert = {}\n",
            toml_string(&q(&f.wrong_ca))
        ),
    );
    assert_exit(&lifeboat().args(["--config", config.to_str().unwrap(), "plan"]).output().unwrap(), 2);

    // libpq's variables.
    let o = lifeboat()
        .args(["plan"])
        .env("PGHOST", "localhost")
        .env("PGPORT", port.to_string())
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &f.ca)
        .output()
        .unwrap();
    assert_exit(&o, 0);

    // No sslrootcert and no ~/.postgresql/root.crt: said so, before connecting.
    let home = tempfile::tempdir().unwrap();
    let o = lifeboat()
        .args(["plan", "--database-url", &url("localhost", port, "postgres", "sslmode=verify-full")])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("set sslrootcert"), "{}", stderr(&o));
}

// covers: FR-11.4, FR-28.1, FR-28.3
#[test]
fn client_certificates_authenticate_and_prefer_and_require_encrypt_without_checking() {
    let (cluster, f) = tls_cluster();
    let port = cluster.port();
    let with_cert = format!("sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}", q(&f.ca), q(&f.cert), q(&f.key));
    assert_exit(&plan(&url("localhost", port, "certuser", &with_cert)), 0);
    let o = plan(&url("localhost", port, "certuser", &format!("sslmode=verify-full&sslrootcert={}", q(&f.ca))));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
    let o = plan(&url("localhost", port, "certuser", &format!("sslmode=require&sslcert={}", q(&f.cert))));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("both sslcert and sslkey"), "{}", stderr(&o));

    // prefer and require take TLS here without checking the certificate
    // (libpq's meaning), so a wrong name does not matter.
    assert_exit(&plan(&url("127.0.0.1", port, "postgres", "sslmode=prefer")), 0);
    assert_exit(&plan(&url("127.0.0.1", port, "postgres", "sslmode=require")), 0);
    // require with a root certificate checks the chain, as libpq does.
    let o = plan(&url("127.0.0.1", port, "postgres", &format!("sslmode=require&sslrootcert={}", q(&f.wrong_ca))));
    assert_exit(&o, 2);
}

// covers: FR-11.4, FR-14.8, FR-28.1, FR-28.4, FR-26.1
#[test]
fn require_never_falls_back_and_a_tls_only_server_gets_every_connection_over_tls() {
    let cluster = Cluster::start();
    let port = cluster.port();
    // ssl = off: require is an error, prefer connects in plain text.
    let o = plan(&url("127.0.0.1", port, "postgres", "sslmode=require"));
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("TLS") && err.contains("ssl = on"), "{err}");
    assert_exit(&plan(&url("127.0.0.1", port, "postgres", "sslmode=prefer")), 0);

    let source = "lb_tls_source";
    let mut admin = support::connect(&cluster.url("postgres"));
    admin.batch_execute(&format!("CREATE DATABASE {source}")).unwrap();
    admin.batch_execute("CREATE DATABASE lb_tls_target").unwrap();
    support::connect(&cluster.url(source)).batch_execute(support::SAAS_SQL).unwrap();
    drop(admin);
    let f = enable_tls(&cluster);
    // From now on a connection without TLS is refused: pg_dump's too.
    cluster.set_hba("hostssl all all 127.0.0.1/32 trust\n");
    let plain = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls);
    assert!(plain.is_err(), "the server must refuse plain text now");

    let d = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n",
        support::saas_config(&format!("postgres://postgres@localhost:{port}/{source}"), &d.path().join("backups"))
            .replace(
                "[storage]",
                &format!("sslmode = \"verify-full\"\nsslrootcert = {}\n\n[storage]", toml_string(&q(&f.ca)))
            )
    );
    let config = support::write_config(d.path(), &toml);
    let o = lifeboat().args(["--config", config.to_str().unwrap(), "--json", "backup"]).output().unwrap();
    assert_exit(&o, 0);
    let archive = json(&o)["archive"].as_str().unwrap().to_string();

    let target = url("localhost", port, "postgres", &format!("sslmode=verify-full&sslrootcert={}", q(&f.ca)))
        .replace("/postgres?", "/lb_tls_target?");
    let o = lifeboat()
        .args([
            "--json",
            "restore",
            &archive,
            "--db",
            &target,
            "--trusted-key",
            &crate::support::its_store_key(&archive),
        ])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    assert_eq!(json(&o)["ok"], true);

    // init keeps the TLS settings it connected with, so its config plans.
    let written = d.path().join("init.toml");
    let source_url = url("localhost", port, "postgres", &format!("sslmode=verify-full&sslrootcert={}", q(&f.ca)))
        .replace("/postgres?", &format!("/{source}?"));
    let o = lifeboat()
        .args(["init", "--database-url", &source_url, "--output", written.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(text.contains("sslmode = \"verify-full\"\nsslrootcert = "), "{text}");
    let o = lifeboat().args(["--config", written.to_str().unwrap(), "plan"]).output().unwrap();
    assert_exit(&o, 0);
}

//! The one storage trait (`lifeboat::store::Archives`) over the local
//! storage directory and a real S3-compatible store (SeaweedFS): the same
//! retention call over either store keeps and deletes the same archives for
//! the same reasons, reading the archives it judges through the store (a
//! full streamed read of each S3 object); and `lifeboat list` shows what
//! was put into the S3 store through the trait, beside the local archives.

use std::path::Path;

use chrono::Utc;
use lifeboat::config::{Config, RetentionConfig};
use lifeboat::retention::{self, Action, Judge};
use lifeboat::store::dry_run::{Action as DryAction, DryRun};
use lifeboat::store::s3::RemoteStore;
use lifeboat::store::{Archives, LocalStore};

use crate::support::s3::{self, weed};
use crate::support::{self, TestConfig};

const PREFIX: &str = "critical_backup";
const REMOTE_PREFIX: &str = "trait/copies";

/// A config with `[storage] dir` in `dir` and `[remote]` in `bucket`; its
/// database is never connected to.
fn test_config(dir: &Path, bucket: &str) -> TestConfig {
    TestConfig::new("postgres://nobody@127.0.0.1:1/none", dir.join("backups")).section(weed().remote_toml(
        bucket,
        REMOTE_PREFIX,
        "",
    ))
}

fn resolve(text: &str) -> Config {
    lifeboat::config::resolve(Some((Path::new("x.toml"), text)), &Default::default(), &Default::default()).unwrap()
}

fn name_days_ago(days: i64) -> String {
    let t = Utc::now() - chrono::Duration::days(days) - chrono::Duration::hours(1);
    format!("{PREFIX}_{}.tar.gz", t.format("%Y%m%d_%H%M%S"))
}

fn names(store: &dyn Archives) -> Vec<String> {
    store.list().unwrap().into_iter().map(|a| a.name).collect()
}

/// The same archives put through the trait into the local directory and
/// into S3, then the same retention call over each: the decisions (name,
/// keep or delete, reason, size) are identical, and so is what is left. The
/// damaged newest archive is found damaged in both (read in full, the S3
/// one streamed from the store), so it does not count for `keep_last`, and
/// the good ones protect the fourth-newest although it is past
/// `retention_days`. A dry run over the S3 store deletes nothing.
// covers: FR-6.1, FR-6.2, FR-6.6, FR-29.7
#[test]
fn the_same_retention_call_deletes_the_same_archives_locally_and_in_s3() {
    if !s3::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = weed().bucket("trait_retention");
    // Every "good" archive is a copy of one real archive made by `lifeboat backup`.
    let good = dir.path().join("good.tar.gz");
    std::fs::write(&good, support::small_archive()).unwrap();
    let damaged = dir.path().join("damaged.tar.gz");
    std::fs::write(&damaged, b"not a gzip stream").unwrap();

    let config = resolve(&test_config(dir.path(), &bucket).toml());
    let remote = RemoteStore::from_config(&config.remote).unwrap().expect("[remote] is set");
    let local = LocalStore::new(dir.path().join("local"), PREFIX);
    std::fs::create_dir(dir.path().join("local")).unwrap();

    // Newest first: damaged (0 days), good (1, 2, 45 days), good (40 days is the 4th good), good (50, 60 days).
    let planted: Vec<(String, &Path)> = vec![
        (name_days_ago(0), &damaged),
        (name_days_ago(1), &good),
        (name_days_ago(2), &good),
        (name_days_ago(40), &good),
        (name_days_ago(50), &good),
        (name_days_ago(60), &damaged),
    ];
    let stores: [&dyn Archives; 2] = [&local, &remote];
    for store in stores {
        for (name, file) in &planted {
            let up = store.put(file, name, &|_| {}).unwrap();
            assert_eq!(up.bytes, std::fs::metadata(file).unwrap().len(), "{}", up.object);
        }
    }
    assert_eq!(local.list().unwrap(), remote.list().unwrap(), "both stores list the same archives");
    assert!(remote.sha256(&planted[1].0).unwrap().is_some(), "an upload records its SHA-256");

    let policy = RetentionConfig { retention_days: 30, keep_last: 3, ..Default::default() };
    let now = Utc::now();
    let judge = Judge::Read { verified: None };
    let dry = DryRun::new(RemoteStore::from_config(&config.remote).unwrap().unwrap()).unwrap();
    let would = retention::apply(&dry, PREFIX, None, &policy, now, judge, &|_| {}).unwrap();
    assert_eq!(names(&remote).len(), planted.len(), "a dry run over S3 deletes nothing");

    let on_local = retention::apply(&local, PREFIX, None, &policy, now, judge, &|_| {}).unwrap();
    let on_remote = retention::apply(&remote, PREFIX, None, &policy, now, judge, &|_| {}).unwrap();
    assert_eq!(on_local, on_remote, "the same decision for the same archives");
    assert_eq!(would, on_remote, "the dry run decided the same");
    let deleted: Vec<&str> = on_remote.deletes().map(|d| d.name.as_str()).collect();
    assert_eq!(deleted, [planted[4].0.as_str(), planted[5].0.as_str()], "{on_remote:#?}");
    let want: Vec<DryAction> = deleted.iter().map(|n| DryAction::Delete(n.to_string())).collect();
    assert_eq!(dry.actions(), want);
    let newest = &on_remote.decisions[0];
    assert_eq!(newest.action, Action::Keep);
    assert!(newest.reason.contains("not good: damaged"), "the S3 copy was read and found damaged: {}", newest.reason);
    let fourth = on_remote.decisions.iter().find(|d| d.name == planted[3].0).unwrap();
    assert!(fourth.reason.contains("keep_last = 3"), "{}", fourth.reason);

    let mut left: Vec<String> = planted[..4].iter().map(|(n, _)| n.clone()).collect();
    left.sort();
    assert_eq!((names(&local), names(&remote)), (left.clone(), left.clone()));
    // In the bucket itself: each kept archive and its SHA-256 sidecar, nothing of the deleted ones.
    let mut objects: Vec<String> = left.iter().flat_map(|n| [n.clone(), format!("{n}.sha256")]).collect();
    objects.sort();
    assert_eq!(weed().names(&bucket, REMOTE_PREFIX), objects);
}

/// `lifeboat list` over the trait: archives that are only in S3 (put there
/// through the trait) show as remote copies beside the local ones, as the
/// offsite step's uploads did before, with their sizes; `size`, `sha256`
/// and `open` of the S3 store return what was put.
// covers: FR-29.8
#[test]
fn list_shows_what_was_put_into_s3_through_the_trait() {
    if !s3::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = weed().bucket("trait_list");
    let test_config = test_config(dir.path(), &bucket);
    let config_path = test_config.write(dir.path());
    let config = resolve(&test_config.toml());
    let remote = RemoteStore::from_config(&config.remote).unwrap().unwrap();
    let local = lifeboat::store::open(&config);
    std::fs::create_dir_all(local.dir()).unwrap();

    let (both, only_remote) = (name_days_ago(2), name_days_ago(3));
    let file = dir.path().join("payload");
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i * 31).to_le_bytes()).collect();
    std::fs::write(&file, &data).unwrap();
    for name in [&both, &only_remote] {
        let up = remote.put(&file, name, &|_| {}).unwrap();
        assert_eq!(up.object, format!("s3://{bucket}/{REMOTE_PREFIX}/{name}"));
        assert_eq!(remote.sha256(name).unwrap().as_deref(), Some(up.sha256.as_str()));
    }
    local.put(&file, &both, &|_| {}).unwrap();
    assert_eq!(remote.size(&only_remote).unwrap(), data.len() as u64);
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut remote.open(&only_remote).unwrap(), &mut read).unwrap();
    assert!(read == data, "the S3 copy reads back as put");

    let out = support::lifeboat().arg("--config").arg(&config_path).args(["--json", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(String, bool, String, u64)> = v["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["local"].as_bool().unwrap(),
                a["remote"].as_str().unwrap_or("-").to_string(),
                a["remote_bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let n = data.len() as u64;
    assert_eq!(rows, [(both, true, "present".into(), n), (only_remote, false, "present".into(), n)], "{v}");
}

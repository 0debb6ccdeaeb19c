//! Files that never end or are not files: `/dev/zero` reports a length of 0 and yields bytes
//! forever, so a reader that trusts the length (or has no limit) allocates until the process is
//! killed. Every reader of JSON input refuses them with an error naming the path instead.
#![cfg(target_os = "linux")]

use std::path::Path;

use inferkit_core::hf::HfModel;
use inferkit_core::{Cluster, DirectoryFacts, Error};
use inferkit_probe::static_inventory::load_cluster;

fn names(err: &Error, path: &Path) -> bool {
    matches!(err, Error::Io { path: p, source } if p == path && source.to_string().starts_with("not a regular file"))
}

#[test]
fn cluster_json_from_a_device_is_refused() {
    let zero = Path::new("/dev/zero");
    let err = Cluster::from_json_file(zero).unwrap_err();
    assert!(names(&err, zero), "{err:?}");
    let err = load_cluster(zero).unwrap_err();
    assert!(names(&err, zero), "{err:?}");
}

#[test]
fn a_model_config_linked_to_a_device_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let err = HfModel::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == config),
        "{err:?}"
    );
    // Listing the directory skips it rather than reading it (it used to read forever).
    let facts = DirectoryFacts::read(dir.path()).unwrap();
    assert!(facts.texts.is_empty(), "{:?}", facts.texts.keys());
}

#[test]
fn the_cluster_fixtures_still_read() {
    let fleet =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clusters/fleet-1000x8.json");
    assert_eq!(Cluster::from_json_file(&fleet).unwrap().workers.len(), 1000);
}

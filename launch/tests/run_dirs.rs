//! Run directories and launch files: a planted link or another user's directory is refused
//! before anything is written or started, and what the launcher creates is private.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use inferkit_core::{Error, LaunchFile, LaunchSpec, ProcessRole, RunTimeFile};
use inferkit_launch::{Launcher, run_dir};

const STANDIN: &str = env!("CARGO_BIN_EXE_inferkit-standin");

/// A stand-in that does not start without `file` in its working directory.
fn standin_requiring(file: &str) -> LaunchSpec {
    LaunchSpec::new(
        "worker-0",
        ProcessRole::Main,
        STANDIN,
        vec![
            "--port".into(),
            "0".into(),
            "--require-file".into(),
            file.into(),
        ],
    )
}

/// A stand-in that needs its config file, like MindIE.
fn spec_with_config() -> LaunchSpec {
    let mut process = standin_requiring("conf/config.json");
    process.files = vec![LaunchFile {
        path: PathBuf::from("conf/config.json"),
        content: r#"{"ServerConfig":{"port":1025}}"#.into(),
        link_to: None,
    }];
    process
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn refused(error: Error) -> String {
    match error {
        Error::InvalidParameter { name, reason } => format!("{name}: {reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn a_run_directory_planted_as_a_link_is_refused_by_start_and_by_check() {
    let shared = tempfile::tempdir().unwrap();
    let victim = tempfile::tempdir().unwrap();
    let planted = shared.path().join("inferkit-qwen");
    std::os::unix::fs::symlink(victim.path(), &planted).unwrap();
    let launcher = Launcher::default();
    let checked = refused(launcher.check(&[spec_with_config()], &planted).unwrap_err());
    assert!(checked.contains("symbolic link"), "{checked}");
    let started = refused(
        launcher
            .start(vec![spec_with_config()], &planted)
            .await
            .unwrap_err(),
    );
    assert!(started.contains("symbolic link"), "{started}");
    assert!(
        empty(victim.path()),
        "nothing is written where the link points"
    );
}

#[tokio::test]
async fn a_run_directory_others_can_write_into_or_own_is_refused() {
    let shared = tempfile::tempdir().unwrap();
    let open = shared.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let reason = refused(Launcher::default().check(&[], &open).unwrap_err());
    assert!(reason.contains("other users may write"), "{reason}");
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = shared.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        let reason = refused(
            Launcher::default()
                .start(vec![spec_with_config()], &theirs)
                .await
                .unwrap_err(),
        );
        assert!(reason.contains("belongs to user id 65534"), "{reason}");
        assert!(empty(&theirs));
    }
}

#[tokio::test]
async fn what_the_launcher_creates_is_private() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("run/qwen");
    let supervisor = Launcher::default()
        .start(vec![spec_with_config()], &dir)
        .await
        .unwrap();
    supervisor.wait_ready().await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("conf")), 0o700);
    assert_eq!(mode(&dir.join("conf/config.json")), 0o600);
    supervisor.stop().await;
}

#[test]
fn fresh_run_directories_are_new_private_and_under_a_private_base() {
    let home = tempfile::tempdir().unwrap();
    let base = home.path().join("state/inferkit/run");
    let first = run_dir::fresh(&base, "Qwen/Qwen2.5-7B").unwrap();
    let second = run_dir::fresh(&base, "Qwen/Qwen2.5-7B").unwrap();
    assert_ne!(first, second);
    for dir in [&first, &second] {
        assert_eq!(dir.parent(), Some(base.as_path()));
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("Qwen_Qwen2.5-7B-"), "{name}");
        assert_eq!(mode(dir), 0o700);
    }
    assert_eq!(mode(&base), 0o700);
    // A base planted as a link is refused too.
    let planted = home.path().join("planted");
    std::os::unix::fs::symlink(home.path().join("state"), &planted).unwrap();
    let reason = refused(run_dir::fresh(&planted, "qwen").unwrap_err());
    assert!(reason.contains("symbolic link"), "{reason}");
}

/// A `serve` killed with SIGKILL cannot remove its run directory: the next fresh one removes
/// the directories of processes that are gone, and keeps those of running ones and anything
/// not named like a run directory.
#[test]
fn run_directories_of_killed_runs_are_removed_at_the_next_start() {
    let home = tempfile::tempdir().unwrap();
    let base = home.path().join("run");
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let abandoned = base.join(format!("qwen-{gone_pid}-0badc0de"));
    let running = base.join(format!("qwen-{}-0badc0de", std::process::id()));
    let other = base.join("notes-1-x");
    for dir in [&abandoned, &running, &other] {
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        std::fs::write(dir.join("conf/config.json"), "{}").unwrap();
    }
    let fresh = run_dir::fresh(&base, "qwen").unwrap();
    assert!(
        !abandoned.exists(),
        "the directory of a killed run is left behind"
    );
    assert!(running.exists() && other.exists() && fresh.exists());
    let name = fresh.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with(&format!("qwen-{}-", std::process::id())),
        "{name}"
    );
}

#[test]
fn a_launch_file_leaving_the_run_directory_is_refused_by_the_check_alone() {
    let base = tempfile::tempdir().unwrap();
    let mut spec = spec_with_config();
    spec.files[0].path = PathBuf::from("../escape.json");
    for dir in [
        base.path().to_path_buf(),
        base.path().join("not-created-yet"),
    ] {
        let reason = refused(
            Launcher::default()
                .check(&[spec.clone()], &dir)
                .unwrap_err(),
        );
        assert!(reason.contains("escape.json"), "{reason}");
    }
    assert!(empty(base.path()));
}

/// A process reading a file something else writes at run time (MindIE's rank table, which
/// Ascend Operator writes on Kubernetes) is refused while the file is missing, before the run
/// directory is even made; once the file is there, it starts and finds it.
#[tokio::test]
async fn a_process_whose_run_time_file_is_missing_is_refused_until_it_is_there() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("run");
    let mut spec = standin_requiring("ranktable.json");
    spec.run_time_files = vec![RunTimeFile {
        path: PathBuf::from("ranktable.json"),
        written_by: "Ascend Operator".into(),
    }];
    let launcher = Launcher::default();
    for error in [
        launcher.check(&[spec.clone()], &dir).unwrap_err(),
        launcher.start(vec![spec.clone()], &dir).await.unwrap_err(),
    ] {
        let Error::Unsupported { reason } = error else {
            panic!("expected an unsupported plan, got {error:?}");
        };
        assert!(
            reason.starts_with(
                "ranktable.json is written at run time by Ascend Operator, and it is not in the \
                 run directory"
            ),
            "{reason}"
        );
    }
    assert!(
        !dir.exists(),
        "nothing is made for a process that cannot start"
    );

    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("ranktable.json"), r#"{"status":"completed"}"#).unwrap();
    launcher.check(&[spec.clone()], &dir).unwrap();
    let supervisor = launcher.start(vec![spec], &dir).await.unwrap();
    supervisor.wait_ready().await.unwrap();
    supervisor.stop().await;
}

//! The launcher and supervisor end to end, with `inferkit-standin` (launch/tests/standins/) playing
//! each backend: slow start, crash on start, never healthy, exit later, ignore SIGTERM, helper
//! processes left in the group. Ports come from [`free_port`]; every wait has a generous
//! limit so that a loaded machine slows the tests down rather than failing them.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferkit_core::{Error, HealthCheck, LaunchFile, LaunchSpec, ProcessRole};
use inferkit_launch::{
    LaunchOptions, Launcher, ProcessHandle, ProcessState, RestartPolicy, Supervisor,
};

#[cfg(target_os = "linux")]
use inferkit_core::testkit::process_is_dead;

const STANDIN: &str = env!("CARGO_BIN_EXE_inferkit-standin");

/// Longest any single wait may take before the test fails (a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A port no other test of this run is given and nothing listens on now. It is drawn below
/// Linux's ephemeral range (32768 and up), where the kernel also picks the local ports of
/// outgoing connections and of `bind(0)`: a port taken from `bind(0)` and released could be
/// given to the launcher's own health probe (or another test's) before the stand-in binds it,
/// and the stand-in then fails with "address in use". Each test binary starts at an offset of
/// its process id, so that test binaries run side by side rarely meet.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % COUNT;
    for _ in 0..COUNT {
        let index = (offset + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) % COUNT;
        let port = u16::try_from(FIRST + index).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT);
}

/// A stand-in serving `/health` on a fresh port, with extra stand-in flags.
fn http_backend(role: ProcessRole, flags: &[&str]) -> LaunchSpec {
    let port = free_port();
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(["--health".to_string(), "/health".to_string()]);
    args.extend(flags.iter().map(|f| f.to_string()));
    let mut process = LaunchSpec::new("worker-0", role, STANDIN, args);
    process.health = Some(HealthCheck {
        port,
        path: Some("/health".into()),
    });
    process
}

/// A stand-in that only accepts TCP connections, like a llama.cpp RPC server.
fn rpc_server(flags: &[&str]) -> LaunchSpec {
    let port = free_port();
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    let mut process = LaunchSpec::new(
        "worker-0",
        ProcessRole::subordinate("rpc_server"),
        STANDIN,
        args,
    );
    process.health = Some(HealthCheck { port, path: None });
    process
}

/// Quick probing, a 2 s stop grace, no restarts.
fn options() -> LaunchOptions {
    LaunchOptions {
        ready_timeout_ms: 10_000,
        probe_initial_delay_ms: 20,
        probe_max_delay_ms: 200,
        stop_grace_ms: 2_000,
        ..LaunchOptions::default()
    }
}

async fn start(options: LaunchOptions, specs: Vec<LaunchSpec>, dir: &Path) -> Supervisor {
    Launcher::new(options).start(specs, dir).await.unwrap()
}

/// Every state a process goes through, with when it was seen.
#[derive(Clone, Default)]
struct History(Arc<Mutex<Vec<(Instant, ProcessState)>>>);

impl History {
    fn record(process: &ProcessHandle) -> Self {
        let history = History::default();
        let log = history.clone();
        let mut state = process.state();
        tokio::spawn(async move {
            loop {
                let now = state.borrow_and_update().clone();
                log.0.lock().unwrap().push((Instant::now(), now));
                if state.changed().await.is_err() {
                    return;
                }
            }
        });
        history
    }

    /// The states seen, with consecutive repeats folded and the pid-carrying fields kept.
    fn states(&self) -> Vec<ProcessState> {
        let mut states: Vec<ProcessState> = Vec::new();
        for (_, state) in self.0.lock().unwrap().iter() {
            if states.last() != Some(state) {
                states.push(state.clone());
            }
        }
        states
    }

    /// Names of the states seen, in order (`starting`, `ready`, ...).
    fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.states().iter().map(name).collect();
        names.dedup();
        names
    }

    fn first(&self, wanted: &str) -> Instant {
        let log = self.0.lock().unwrap();
        log.iter()
            .find(|(_, state)| name(state) == wanted)
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("never {wanted}: {:?}", self.names()))
    }
}

fn name(state: &ProcessState) -> &'static str {
    match state {
        ProcessState::Waiting => "waiting",
        ProcessState::Starting { .. } => "starting",
        ProcessState::Ready { .. } => "ready",
        ProcessState::Restarting { .. } => "restarting",
        ProcessState::Failed { .. } => "failed",
        ProcessState::Stopping { .. } => "stopping",
        ProcessState::Stopped { .. } => "stopped",
    }
}

async fn final_state(process: &ProcessHandle) -> ProcessState {
    let mut state = process.state();
    within("a final state", state.wait_for(ProcessState::is_final))
        .await
        .unwrap()
        .clone()
}

fn ready_pid(process: &ProcessHandle) -> u32 {
    match process.current() {
        ProcessState::Ready { pid } => pid,
        other => panic!("not ready: {other:?}"),
    }
}

/// Whether `pid` no longer exists at all: reaped, not a zombie.
#[cfg(target_os = "linux")]
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(target_os = "linux")]
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn slow_start_is_ready_once_health_answers_200_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let spec = http_backend(ProcessRole::Main, &["--ready-after-ms", "600"]);
    let port = spec.health.as_ref().unwrap().port;
    let started = Instant::now();
    let supervisor = start(options(), vec![spec], dir.path()).await;
    let main = supervisor.main().unwrap().clone();
    let history = History::record(&main);
    within("ready", supervisor.wait_ready()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "ready before /health said so"
    );
    let pid = ready_pid(&main);
    assert_eq!(history.names(), ["starting", "ready"]);
    assert!(
        main.last_lines()
            .contains(&format!("standin: listening on {port}")),
        "{:?}",
        main.last_lines()
    );
    within("stop", supervisor.stop()).await;
    // SIGTERM's default action ends the stand-in: no exit code, a signal.
    assert_eq!(main.current(), ProcessState::Stopped { exit_code: None });
    assert_eq!(
        history.names(),
        ["starting", "ready", "stopping", "stopped"]
    );
    #[cfg(target_os = "linux")]
    assert!(reaped(pid), "process {pid} was not reaped");
}

#[tokio::test]
async fn crash_on_start_fails_with_the_exit_code_and_the_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let spec = http_backend(ProcessRole::Main, &["--crash", "1"]);
    let supervisor = start(options(), vec![spec], dir.path()).await;
    let main = supervisor.main().unwrap();
    let crash_line = "standin: error: failed to load model: stand-in crash on start";
    match final_state(main).await {
        ProcessState::Failed {
            reason,
            exit_code,
            last_lines,
        } => {
            assert_eq!(reason, "exited before it was ready: exit code 1");
            assert_eq!(exit_code, Some(1));
            assert_eq!(
                last_lines.last().map(String::as_str),
                Some(crash_line),
                "{last_lines:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    match supervisor.wait_ready().await {
        Err(Error::Process { name, reason }) => {
            assert_eq!(name, "main");
            assert!(
                reason.contains("exit code 1") && reason.ends_with(crash_line),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn never_healthy_fails_at_the_deadline_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = http_backend(ProcessRole::Main, &["--never-ready"]);
    let timeout = LaunchOptions {
        ready_timeout_ms: 800,
        ..options()
    };
    let supervisor = start(timeout, vec![spec], dir.path()).await;
    let main = supervisor.main().unwrap();
    let history = History::record(main);
    let ProcessState::Failed {
        reason, exit_code, ..
    } = final_state(main).await
    else {
        panic!("{:?}", main.current());
    };
    assert_eq!(reason, "not ready within 800ms: GET /health answered 503");
    assert_eq!(
        exit_code, None,
        "stopped by the supervisor, not exited by itself"
    );
    let states = history.states();
    assert_eq!(
        history.names(),
        ["starting", "stopping", "failed"],
        "{states:?}"
    );
    #[cfg(target_os = "linux")]
    {
        let ProcessState::Starting { pid, .. } = states[0] else {
            panic!("{states:?}");
        };
        assert!(reaped(pid));
    }
}

#[tokio::test]
async fn exit_after_ready_restarts_per_policy_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let spec = http_backend(
        ProcessRole::Main,
        &["--exit-after-ms", "700", "--exit-code", "3"],
    );
    let restart_once = LaunchOptions {
        restart: RestartPolicy {
            max_restarts: 1,
            initial_delay_ms: 300,
            max_delay_ms: 300,
            reset_after_ms: 60_000,
        },
        ..options()
    };
    let supervisor = start(restart_once, vec![spec], dir.path()).await;
    let main = supervisor.main().unwrap();
    let history = History::record(main);
    let ProcessState::Failed {
        reason,
        exit_code,
        last_lines,
    } = final_state(main).await
    else {
        panic!("{:?}", main.current());
    };
    assert_eq!(reason, "exited after it was ready: exit code 3");
    assert_eq!(exit_code, Some(3));
    let exits = last_lines
        .iter()
        .filter(|l| l.as_str() == "standin: error: stand-in exiting after serving")
        .count();
    assert_eq!(exits, 2, "the tail spans both runs: {last_lines:?}");
    let states = history.states();
    let readies: Vec<u32> = states
        .iter()
        .filter_map(|s| match s {
            ProcessState::Ready { pid } => Some(*pid),
            _ => None,
        })
        .collect();
    assert_eq!(readies.len(), 2, "{states:?}");
    assert_ne!(readies[0], readies[1], "the restart is a new process");
    assert!(states.contains(&ProcessState::Restarting {
        attempt: 1,
        delay_ms: 300,
        reason: "exited after it was ready: exit code 3".into(),
    }));
    assert!(states.contains(&ProcessState::Starting {
        pid: readies[1],
        attempt: 1
    }));
}

#[tokio::test]
async fn serving_long_enough_resets_the_restart_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = http_backend(ProcessRole::Main, &["--exit-after-ms", "400"]);
    let forgiving = LaunchOptions {
        restart: RestartPolicy {
            max_restarts: 1,
            initial_delay_ms: 100,
            max_delay_ms: 100,
            reset_after_ms: 200,
        },
        ..options()
    };
    let supervisor = start(forgiving, vec![spec], dir.path()).await;
    let main = supervisor.main().unwrap().clone();
    let history = History::record(&main);
    // One restart allowed, yet a third run comes: each run served past the reset time.
    let mut state = main.state();
    let mut starts = 0;
    within("a third run", async {
        while starts < 3 {
            state.changed().await.unwrap();
            if let ProcessState::Starting { attempt, .. } = *state.borrow_and_update() {
                assert!(attempt <= 1, "the count was not reset: attempt {attempt}");
                starts += 1;
            }
        }
    })
    .await;
    within("stop", supervisor.stop()).await;
    let restarts: Vec<u32> = history
        .states()
        .iter()
        .filter_map(|s| match s {
            ProcessState::Restarting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert!(
        restarts.len() >= 2 && restarts.iter().all(|&a| a == 1),
        "{restarts:?}"
    );
    assert!(!history.names().contains(&"failed"));
}

#[tokio::test]
async fn ignoring_sigterm_gets_sigkill_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let spec = http_backend(ProcessRole::Main, &["--ignore-term"]);
    let short_grace = LaunchOptions {
        stop_grace_ms: 500,
        ..options()
    };
    let supervisor = start(short_grace, vec![spec], dir.path()).await;
    within("ready", supervisor.wait_ready()).await.unwrap();
    let main = supervisor.main().unwrap().clone();
    let pid = ready_pid(&main);
    assert!(
        main.last_lines()
            .contains(&"standin: ignoring SIGTERM".to_string())
    );
    let stopping = Instant::now();
    within("stop", supervisor.stop()).await;
    assert!(
        stopping.elapsed() >= Duration::from_millis(500),
        "killed before the grace period"
    );
    assert_eq!(main.current(), ProcessState::Stopped { exit_code: None });
    #[cfg(target_os = "linux")]
    assert!(reaped(pid));
}

#[tokio::test]
async fn subordinates_start_first_and_each_is_ready_before_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let main = http_backend(ProcessRole::Main, &["--ready-after-ms", "200"]);
    let rpc = rpc_server(&["--ready-after-ms", "500"]);
    // Given main first: the launcher still starts the RPC server first.
    let supervisor = start(options(), vec![main, rpc], dir.path()).await;
    let names: Vec<&str> = supervisor.processes().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["rpc_server-0", "main"]);
    let (rpc, main) = (&supervisor.processes()[0], &supervisor.processes()[1]);
    let (rpc_history, main_history) = (History::record(rpc), History::record(main));
    within("ready", supervisor.wait_ready()).await.unwrap();
    assert_eq!(main_history.names(), ["waiting", "starting", "ready"]);
    assert!(main_history.first("starting") >= rpc_history.first("ready"));
    within("stop", supervisor.stop()).await;
    assert!(
        main_history.first("stopped") <= rpc_history.first("stopping"),
        "the main process stops first"
    );
}

#[tokio::test]
async fn a_failed_subordinate_keeps_the_main_process_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("main-report.txt");
    let main = http_backend(ProcessRole::Main, &["--report", report.to_str().unwrap()]);
    let rpc = rpc_server(&["--crash", "7"]);
    let supervisor = start(options(), vec![rpc, main], dir.path()).await;
    let main = supervisor.main().unwrap();
    assert_eq!(
        final_state(main).await,
        ProcessState::Failed {
            reason: "not started: rpc_server-0 did not become ready".into(),
            exit_code: None,
            last_lines: Vec::new(),
        }
    );
    assert!(!report.exists(), "the main process was spawned");
    let err = supervisor.wait_ready().await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("process rpc_server-0: exited before it was ready: exit code 7"),
        "{err}"
    );
}

#[tokio::test]
async fn files_argv_env_and_working_directory_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"ServerConfig":{"port":1025,"managementPort":1025}}"#;
    // After `--`, words a shell would split or expand, and an empty one: the stand-in
    // reports them as it received them.
    let mut spec = http_backend(
        ProcessRole::Main,
        &[
            "--require-file",
            "conf/config.json",
            "--report",
            "report.txt",
            "--",
            "--alias",
            "my model; echo $HOME",
            "",
            "--ctx-size",
            "8192",
        ],
    );
    spec.env = BTreeMap::from([
        (
            "STANDIN_QUOTED".to_string(),
            "a b 'c' \"d\" $HOME".to_string(),
        ),
        ("STANDIN_EMPTY".to_string(), String::new()),
    ]);
    spec.files = vec![LaunchFile {
        path: PathBuf::from("conf/config.json"),
        content: config.into(),
        link_to: None,
    }];
    let argv = spec.args.clone();
    let supervisor = start(options(), vec![spec], dir.path()).await;
    within("ready", supervisor.wait_ready()).await.unwrap();
    let report = std::fs::read_to_string(dir.path().join("report.txt")).unwrap();
    let mut expected = vec![format!(
        "cwd={}",
        dir.path().canonicalize().unwrap().display()
    )];
    expected.extend(argv.iter().map(|a| format!("arg={a}")));
    expected.push("env=STANDIN_EMPTY=".into());
    expected.push("env=STANDIN_QUOTED=a b 'c' \"d\" $HOME".into());
    assert_eq!(report.lines().collect::<Vec<_>>(), expected);
    let main = supervisor.main().unwrap();
    assert!(main.last_lines().contains(&format!(
        "standin: read conf/config.json ({} bytes)",
        config.len()
    )));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("conf/config.json")).unwrap(),
        config
    );
    supervisor.stop().await;
}

#[tokio::test]
async fn a_bad_launch_file_path_writes_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.txt");
    let mut rpc = rpc_server(&["--report", report.to_str().unwrap()]);
    rpc.files = vec![LaunchFile {
        path: PathBuf::from("rpc.json"),
        content: "{}".into(),
        link_to: None,
    }];
    let mut main = http_backend(ProcessRole::Main, &[]);
    main.files = vec![LaunchFile {
        path: PathBuf::from("../outside.json"),
        content: "{}".into(),
        link_to: None,
    }];
    let err = Launcher::new(options())
        .start(vec![rpc, main], dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter { name, .. } if name == "launch file ../outside.json"),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !dir.path().join("rpc.json").exists(),
        "a file of another process was written"
    );
    assert!(!report.exists(), "a process was started");
}

#[tokio::test]
async fn a_missing_program_fails_at_once_without_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = {
        let mut process = http_backend(ProcessRole::Main, &[]);
        process.program = "/nonexistent/llama-box".into();
        process
    };
    let restarts = LaunchOptions {
        restart: RestartPolicy::on_failure(3),
        ..options()
    };
    let supervisor = start(restarts, vec![spec], dir.path()).await;
    let main = supervisor.main().unwrap();
    let history = History::record(main);
    let ProcessState::Failed { reason, .. } = final_state(main).await else {
        panic!("{:?}", main.current());
    };
    assert!(
        reason.starts_with("cannot start `/nonexistent/llama-box`: "),
        "{reason}"
    );
    assert!(!history.names().contains(&"restarting"));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn stopping_kills_helpers_left_in_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let spec = http_backend(
        ProcessRole::Main,
        &["--spawn-grandchild", pidfile.to_str().unwrap()],
    );
    let supervisor = start(options(), vec![spec], dir.path()).await;
    within("ready", supervisor.wait_ready()).await.unwrap();
    let grandchild: u32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(!process_is_dead(grandchild));
    let started = Instant::now();
    within("stop", supervisor.stop()).await;
    // The stand-in itself obeys SIGTERM at once; its helper, which ignores it, is killed with
    // the group right after instead of holding the stop for the grace period.
    assert!(started.elapsed() < Duration::from_millis(2_000));
    eventually("the helper to die", || process_is_dead(grandchild)).await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_supervisor_kills_every_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let main = http_backend(
        ProcessRole::Main,
        &["--spawn-grandchild", pidfile.to_str().unwrap()],
    );
    let rpc = rpc_server(&["--ignore-term"]);
    let supervisor = start(options(), vec![rpc, main], dir.path()).await;
    within("ready", supervisor.wait_ready()).await.unwrap();
    let pids: Vec<u32> = supervisor.processes().iter().map(ready_pid).collect();
    let grandchild: u32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    drop(supervisor);
    for pid in pids.into_iter().chain([grandchild]) {
        eventually(&format!("process {pid} to die"), || process_is_dead(pid)).await;
    }
}

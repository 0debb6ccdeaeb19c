//! The supervising process itself signalled or killed: whatever way `serve` ends, every process
//! it started ends too, down to the helpers those started, whether they stayed in the
//! program's process group or left it for a session of their own. `inferkit-serve-standin`
//! plays `serve`, `inferkit-standin` the backend.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use inferkit_core::testkit::process_is_dead;

const SERVE: &str = env!("CARGO_BIN_EXE_inferkit-serve-standin");
const BACKEND: &str = env!("CARGO_BIN_EXE_inferkit-standin");

/// Longest any single wait may take before the test fails (a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(20);

/// The signals that end `serve`, as `kill -s` names them.
const SIGNALS: [(libc::c_int, &str); 4] = [
    (libc::SIGTERM, "TERM"),
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGKILL, "KILL"),
];

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_pid(path: &Path) -> u32 {
    wait_until(&format!("{}", path.display()), || path.exists());
    let text = std::fs::read_to_string(path).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {text:?}", path.display()))
}

/// A running `serve` with its backend, the backend's helper in the backend's process group and
/// a daemon in a session of its own.
struct Serving {
    serve: Child,
    stdout: BufReader<ChildStdout>,
    /// Guardian (the pid `serve` knows), backend, helper, daemon.
    pids: [u32; 4],
}

fn start_serving(dir: &Path, grace_ms: u64) -> Serving {
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let backend_args = [
        "--port".to_string(),
        "0".into(),
        "--pidfile".into(),
        file("backend.pid"),
        "--spawn-grandchild".into(),
        file("helper.pid"),
        "--spawn-daemon".into(),
        file("daemon.pid"),
    ];
    let mut serve = Command::new(SERVE)
        .arg(dir)
        .arg(grace_ms.to_string())
        .arg(BACKEND)
        .args(backend_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let guardian: u32 = line
        .strip_prefix("started ")
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"));
    let pids = [
        guardian,
        read_pid(&dir.join("backend.pid")),
        read_pid(&dir.join("helper.pid")),
        read_pid(&dir.join("daemon.pid")),
    ];
    for name in ["backend.pid", "helper.pid", "daemon.pid"] {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    Serving {
        serve,
        stdout,
        pids,
    }
}

/// Sends `signal` to `serve`, waits for it to end and for every process it started to die.
fn end_by(mut serving: Serving, (signal, name): (libc::c_int, &str)) {
    assert!(
        serving.pids.iter().all(|&pid| !process_is_dead(pid)),
        "all running"
    );
    // SAFETY: `kill` has no memory-safety preconditions.
    unsafe { libc::kill(serving.serve.id() as i32, signal) };
    let status = serving.serve.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut serving.stdout, &mut rest).unwrap();
    if signal == libc::SIGKILL {
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    } else {
        assert!(status.success(), "SIG{name}: {status}");
        assert_eq!(rest.trim(), format!("stopped {}", name_of(name)));
    }
    for (pid, what) in serving
        .pids
        .iter()
        .zip(["guardian", "backend", "helper", "daemon"])
    {
        wait_until(&format!("the {what} {pid} to die after SIG{name}"), || {
            process_is_dead(*pid)
        });
    }
}

/// `Shutdown`'s Debug name of the signal `kill -s` calls `name`.
fn name_of(name: &str) -> String {
    let mut chars = name.chars();
    let first = chars.next().unwrap();
    format!("{first}{}", chars.as_str().to_lowercase())
}

#[test]
fn every_descendant_ends_with_serve_on_any_signal() {
    for signal in SIGNALS {
        let dir = tempfile::tempdir().unwrap();
        let serving = start_serving(dir.path(), 500);
        end_by(serving, signal);
    }
}

/// xorshift64*: a seeded generator, so that a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// 200 start/stop cycles under random signals, each at a random moment after the start: no
/// process survives, and nothing is left in the run directory.
#[test]
fn soak_200_cycles_under_random_signals_leave_nothing_behind() {
    let seed = 0x1d_2026_u64;
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    for cycle in 0..200 {
        let signal = SIGNALS[rng.below(SIGNALS.len() as u64) as usize];
        let serving = start_serving(dir.path(), 200);
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        end_by(serving, signal);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "cycle {cycle} (seed {seed:#x}): {left:?}");
    }
    eprintln!("200 cycles in {:?}", started.elapsed());
}

//! A stand-in inference backend for the `process` tests: a program that behaves like llama-box,
//! vLLM, vox-box or MindIE as far as a supervisor can see (log lines, a health endpoint, exit
//! codes, signals), without loading a model.
//!
//! ```text
//! inferkit-standin --port PORT [--health PATH] [--ready-after-ms N] [--never-ready]
//!     [--crash CODE] [--exit-after-ms N] [--exit-code CODE] [--ignore-term]
//!     [--require-file PATH] [--report FILE] [--pidfile FILE] [--spawn-grandchild PIDFILE]
//!     [--spawn-daemon PIDFILE] [--echo-args] [-- BACKEND_ARGS...]
//! ```
//!
//! With `--health`, it answers `GET PATH` with 503 and llama.cpp's loading body until
//! `--ready-after-ms` has passed (never with `--never-ready`), then 200; without it, it only
//! accepts TCP connections (a llama.cpp RPC server), and listens after `--ready-after-ms`. `--crash` prints an error and exits at once,
//! `--exit-after-ms` exits later, `--ignore-term` ignores SIGTERM, `--require-file` exits 2 when a
//! launch file is missing, `--report` writes the working directory, argv and `STANDIN_*`
//! environment to a file, and `--spawn-grandchild` starts a copy of itself that ignores SIGTERM
//! (as vLLM's engine processes outlive a careless stop) and writes its pid to a file;
//! `--spawn-daemon` does the same in a session of its own (as a daemon that left the process
//! group would), `--pidfile` writes the stand-in's own pid, and `--echo-args` prints its
//! arguments (as a backend logging its configuration would).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, exit};
use std::time::{Duration, Instant};

/// llama.cpp server's answer while the model loads (`tools/server/server.cpp`,
/// `ERROR_TYPE_UNAVAILABLE`).
const LOADING: &str =
    r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#;

#[derive(Default)]
struct Options {
    port: u16,
    health: Option<String>,
    ready_after: Duration,
    never_ready: bool,
    crash: Option<i32>,
    exit_after: Option<Duration>,
    exit_code: i32,
    ignore_term: bool,
    require_file: Option<String>,
    report: Option<String>,
    grandchild_pidfile: Option<String>,
    daemon_pidfile: Option<String>,
    pidfile: Option<String>,
    echo_args: bool,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let options = parse(&argv[1..]);
    println!("standin: starting, pid {}", std::process::id());
    if options.echo_args {
        println!("standin: args {}", argv[1..].join(" "));
    }
    if let Some(path) = &options.report {
        write_report(path, &argv);
    }
    if let Some(path) = &options.require_file {
        match std::fs::read_to_string(path) {
            Ok(content) => println!("standin: read {path} ({} bytes)", content.len()),
            Err(e) => fail(2, &format!("cannot read {path}: {e}")),
        }
    }
    if let Some(code) = options.crash {
        fail(code, "failed to load model: stand-in crash on start");
    }
    if options.ignore_term {
        // SAFETY: installing SIG_IGN is async-signal-safe and touches no Rust state.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        println!("standin: ignoring SIGTERM");
    }
    if let Some(pidfile) = &options.grandchild_pidfile {
        spawn_grandchild(pidfile, false);
    }
    if let Some(pidfile) = &options.daemon_pidfile {
        spawn_grandchild(pidfile, true);
    }
    if let Some(pidfile) = &options.pidfile {
        write_pid(pidfile, std::process::id());
    }
    if let Some(after) = options.exit_after {
        let code = options.exit_code;
        std::thread::spawn(move || {
            std::thread::sleep(after);
            fail(code, "stand-in exiting after serving");
        });
    }
    serve(&options);
}

fn parse(args: &[String]) -> Options {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .unwrap_or_else(|| fail(64, &format!("{flag} needs a value")))
        };
        let millis = |v: String| Duration::from_millis(number(&v));
        match flag.as_str() {
            "--port" => options.port = number(&value()) as u16,
            "--health" => options.health = Some(value()),
            "--ready-after-ms" => options.ready_after = millis(value()),
            "--never-ready" => options.never_ready = true,
            "--crash" => options.crash = Some(number(&value()) as i32),
            "--exit-after-ms" => options.exit_after = Some(millis(value())),
            "--exit-code" => options.exit_code = number(&value()) as i32,
            "--ignore-term" => options.ignore_term = true,
            "--require-file" => options.require_file = Some(value()),
            "--report" => options.report = Some(value()),
            "--spawn-grandchild" => options.grandchild_pidfile = Some(value()),
            "--spawn-daemon" => options.daemon_pidfile = Some(value()),
            "--pidfile" => options.pidfile = Some(value()),
            "--echo-args" => options.echo_args = true,
            // What follows stands for the backend's own flags: reported, not interpreted.
            "--" => break,
            other => fail(64, &format!("unknown argument {other}")),
        }
    }
    options
}

fn number(text: &str) -> u64 {
    text.parse()
        .unwrap_or_else(|_| fail(64, &format!("not a number: {text}")))
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("standin: error: {message}");
    exit(code)
}

/// Working directory, then argv, then the `STANDIN_*` environment, one item a line.
fn write_report(path: &str, argv: &[String]) {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut lines = vec![format!("cwd={}", cwd.display())];
    lines.extend(argv[1..].iter().map(|a| format!("arg={a}")));
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("STANDIN_"))
        .collect();
    env.sort();
    lines.extend(env.into_iter().map(|(k, v)| format!("env={k}={v}")));
    if let Err(e) = std::fs::write(path, lines.join("\n") + "\n") {
        fail(3, &format!("cannot write {path}: {e}"));
    }
}

/// Starts a copy of this program that ignores SIGTERM, in a session of its own when `daemon`.
fn spawn_grandchild(pidfile: &str, daemon: bool) {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(4, &format!("no exe: {e}")));
    let mut command = Command::new(exe);
    command.args(["--port", "0", "--ignore-term"]);
    if daemon {
        // SAFETY: `setsid` is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| fail(4, &format!("cannot spawn: {e}")));
    write_pid(pidfile, child.id());
    println!("standin: grandchild {}", child.id());
    std::thread::spawn(move || child.wait());
}

/// Writes `pid` to `path` whole: to a temporary name first, then renamed, so that a reader
/// never sees an empty file.
fn write_pid(path: &str, pid: u32) {
    let temporary = format!("{path}.tmp");
    let written = std::fs::write(&temporary, pid.to_string())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        fail(4, &format!("cannot write {path}: {e}"));
    }
}

fn serve(options: &Options) -> ! {
    if options.health.is_none() {
        // A bare TCP server (an RPC server) is ready once it listens: start listening late.
        std::thread::sleep(options.ready_after);
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
        .unwrap_or_else(|e| fail(5, &format!("cannot listen on {}: {e}", options.port)));
    println!("standin: listening on {}", options.port);
    let started = Instant::now();
    for stream in listener.incoming().flatten() {
        if let Some(path) = &options.health {
            let ready = !options.never_ready && started.elapsed() >= options.ready_after;
            answer(stream, path, ready);
        }
    }
    fail(5, "listener closed")
}

fn answer(mut stream: TcpStream, health: &str, ready: bool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match (path == health, ready) {
        (true, true) => ("200 OK", r#"{"status":"ok"}"#),
        (true, false) => ("503 Service Unavailable", LOADING),
        (false, _) => ("404 Not Found", r#"{"error":"not found"}"#),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

//! A stand-in for `serve`, for the launcher tests that signal the supervising process itself:
//! supervises one program, as the main process of a plan, until SIGINT, SIGTERM or SIGHUP.
//!
//! ```text
//! inferkit-serve-standin RUN_DIR GRACE_MS PROGRAM [ARGS...]
//! ```
//!
//! Prints `started PID` (the pid the supervisor knows, which is also the process group of the
//! program) once the program runs, and `stopped SIGNAL` after a graceful stop; exits 0 then,
//! 1 when the program fails.

use std::path::PathBuf;
use std::process::ExitCode;

use inferkit_core::{LaunchSpec, ProcessRole};
use inferkit_launch::{LaunchOptions, Launcher, ProcessState, ShutdownSignals};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(run_dir), Some(grace), Some(program)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: inferkit-serve-standin RUN_DIR GRACE_MS PROGRAM [ARGS...]");
        return ExitCode::from(64);
    };
    let spec = LaunchSpec::new("worker-0", ProcessRole::Main, program, args.collect());
    let options = LaunchOptions {
        stop_grace_ms: grace.parse().unwrap_or(500),
        ..LaunchOptions::default()
    };
    // Handlers first, as `serve` installs them before it starts anything.
    let mut shutdown = match ShutdownSignals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: no signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let supervisor = match Launcher::new(options)
        .start(vec![spec], &PathBuf::from(run_dir))
        .await
    {
        Ok(supervisor) => supervisor,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let main = supervisor.main().cloned().expect("one main process");
    if let Err(e) = main.wait_ready().await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let ProcessState::Ready { pid } = main.current() else {
        return ExitCode::FAILURE;
    };
    println!("started {pid}");
    let signal = shutdown.recv().await;
    supervisor.stop().await;
    println!("stopped {signal:?}");
    ExitCode::SUCCESS
}

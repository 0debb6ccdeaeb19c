//! A spinner on stderr for waits longer than about a second (probes with timeouts, large
//! fleets). It never appears when stderr is not a terminal, nor for quick work.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before the spinner appears.
const DELAY: Duration = Duration::from_secs(1);

/// Shows a spinner with its message from [`DELAY`] after [`Waiting::start`] until it is
/// dropped.
pub struct Waiting {
    done: Option<mpsc::Sender<()>>,
    spinner: Option<JoinHandle<()>>,
}

impl Waiting {
    /// Starts timing the wait for `message` (`probing this machine`).
    pub fn start(message: &'static str) -> Self {
        let (done, finished) = mpsc::channel::<()>();
        let spinner = std::thread::spawn(move || {
            if finished.recv_timeout(DELAY) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            // Hidden by indicatif itself when stderr is not a terminal.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(message);
            bar.enable_steady_tick(Duration::from_millis(100));
            let _ = finished.recv();
            bar.finish_and_clear();
        });
        Waiting {
            done: Some(done),
            spinner: Some(spinner),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(spinner) = self.spinner.take() {
            let _ = spinner.join();
        }
    }
}

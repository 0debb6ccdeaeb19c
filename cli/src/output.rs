//! Standard output and how a command ends: every command writes through [`Output`] (never
//! `println!`, which panics when stdout is closed), and [`Failure::report`] turns what went
//! wrong into the exit status.
//!
//! Human output shows names from model and cluster files, which anyone may write: their
//! terminal control characters (an escape sequence that retitles the window, clears the screen
//! or hides a line) are printed escaped (`\x1b`), never raw. JSON escapes them itself.

use std::borrow::Cow;
use std::io::{self, BufWriter, Stdout, Write};
use std::process::ExitCode;

use inferkit::Error;
use serde_json::json;

/// Buffered standard output.
pub struct Output {
    inner: BufWriter<Stdout>,
}

impl Output {
    /// Standard output, buffered.
    pub fn stdout() -> Self {
        Output {
            inner: BufWriter::new(io::stdout()),
        }
    }

    /// Writes `value` as pretty JSON and a newline.
    pub fn json(&mut self, value: &impl serde::Serialize) -> Result<(), Failure> {
        serde_json::to_writer_pretty(&mut self.inner, value).map_err(|e| {
            match e.io_error_kind() {
                Some(kind) => Failure::Stdout(io::Error::from(kind)),
                None => Failure::Message(format!("cannot write JSON: {e}")),
            }
        })?;
        writeln!(self.inner)?;
        Ok(())
    }

    /// Flushes what is buffered: the last chance to see a write error.
    pub fn finish(&mut self) -> Result<(), Failure> {
        self.inner.flush().map_err(Failure::Stdout)
    }
}

/// Human output: control characters other than newline and tab are written escaped.
impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.inner.write_all(terminal_safe(text).as_bytes()),
            Err(_) => self
                .inner
                .write_all(&buf.escape_ascii().to_string().into_bytes()),
        }?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The library refused: exit status 1 with the error (and, with `--json`, the error
    /// object on stdout).
    Library(Error),
    /// A refusal of the command-line tool itself, with its one-line message (exit status 1).
    Message(String),
    /// Writing to stdout failed. A closed pipe (`inferkit plan ... | head -1`) ends quietly
    /// with status 0: the reader has what it wanted.
    Stdout(io::Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Library(error)
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Stdout(error)
    }
}

impl Failure {
    /// Prints the failure and gives the exit status. With `json`, a library error is also
    /// printed on stdout as `{"error": ..., "explanation": [...], "rejected": [...]}`.
    pub fn report(self, json: bool, out: &mut Output) -> ExitCode {
        match self {
            Failure::Stdout(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                ExitCode::SUCCESS
            }
            Failure::Stdout(error) => {
                eprintln!("error: cannot write to stdout: {error}");
                ExitCode::FAILURE
            }
            Failure::Message(message) => {
                eprintln!("error: {}", terminal_safe(&message));
                ExitCode::FAILURE
            }
            Failure::Library(error) => {
                if json {
                    // Best effort: the error is on stderr as well.
                    let _ = out.json(&error_object(&error)).and_then(|()| out.finish());
                }
                report_error(&error);
                ExitCode::FAILURE
            }
        }
    }
}

/// The error object of `--json` output.
fn error_object(error: &Error) -> serde_json::Value {
    let (explanation, rejected) = match error {
        Error::NoPlacement {
            explanation,
            rejected,
            ..
        } => (explanation.as_slice(), rejected.as_slice()),
        _ => (&[][..], &[][..]),
    };
    json!({
        "error": error.to_string(),
        "explanation": explanation,
        "rejected": rejected,
    })
}

/// `text` fit for a terminal: control characters (C0 but newline and tab, DEL, C1) escaped as
/// `\x1b` or `\u{9b}`, so that text from a file cannot drive the terminal.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let is_control = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(is_control) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_control(c) => safe.push(c),
            c if c.is_ascii() => safe.push_str(&format!("\\x{:02x}", c as u32)),
            c => safe.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(safe)
}

/// The error on stderr, with the reasons of a placement that found nothing.
fn report_error(error: &Error) {
    eprintln!("error: {}", terminal_safe(&error.to_string()));
    if let Error::NoPlacement {
        explanation,
        rejected,
        ..
    } = error
    {
        for line in explanation {
            eprintln!("  - {}", terminal_safe(line));
        }
        if !rejected.is_empty() {
            eprintln!("refused:");
        }
        for rejection in rejected {
            eprintln!("  - {}", terminal_safe(&rejection.to_string()));
        }
    }
}

//! A process's output: read line by line, logged through `tracing`, kept in a bounded tail and
//! broadcast to observers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use inferkit_core::launch::ProcessRole;

/// Longest line kept, in bytes; the rest of a longer line is dropped. Progress bars redrawn
/// with `\r` (vLLM's weight loading) make one "line" of the whole load.
const MAX_LINE: usize = 8 * 1024;

/// Lines an observer may fall behind before it misses some.
pub(super) const BROADCAST_CAPACITY: usize = 1024;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// One line printed by a supervised process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    /// The stream it came from.
    pub stream: OutputStream,
    /// The line, without its end of line; invalid UTF-8 replaced.
    pub line: String,
}

/// The last lines of a process, shared between its readers and its handles.
#[derive(Debug, Clone)]
pub(super) struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl LogTail {
    pub(super) fn new(capacity: usize) -> Self {
        // `capacity` is the caller's `log_lines`, possibly huge: reserve at most 1024 lines up
        // front and let a larger tail grow as lines come.
        LogTail {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity,
        }
    }

    fn push(&self, line: String) {
        if self.capacity == 0 {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, oldest first.
    pub(super) fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect()
    }
}

/// Where the lines of one process go.
#[derive(Debug, Clone)]
pub(super) struct Sink {
    pub(super) name: String,
    pub(super) role: ProcessRole,
    pub(super) tail: LogTail,
    pub(super) output: broadcast::Sender<OutputLine>,
    /// The secrets the process was started with (variable → value): shown as placeholders
    /// when the process prints them.
    pub(super) secrets: Arc<BTreeMap<String, String>>,
}

impl Sink {
    fn emit(&self, stream: OutputStream, line: String) {
        let line = if self.secrets.is_empty() {
            line
        } else {
            inferkit_core::secret::scrub(&line, &self.secrets)
        };
        tracing::info!(
            target: "inferkit::process",
            process = %self.name,
            role = self.role.as_str(),
            stream = stream.as_str(),
            "{line}"
        );
        self.tail.push(line.clone());
        // No observer is not an error.
        let _ = self.output.send(OutputLine { stream, line });
    }
}

/// Reads `reader` to its end in a task, emitting each line.
pub(super) fn pump<R>(reader: R, stream: OutputStream, sink: Sink) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        while let Ok(true) = next_line(&mut reader, &mut line).await {
            sink.emit(stream, text(&line));
        }
    })
}

/// Reads one line into `line` (cut at [`MAX_LINE`] bytes); `false` at the end of the stream.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let used = newline.map_or(available.len(), |at| at + 1);
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&available[..used.min(room)]);
        reader.consume(used);
        if newline.is_some() {
            return Ok(true);
        }
    }
}

fn text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while next_line(&mut reader, &mut line).await.unwrap() {
            lines.push(text(&line));
        }
        lines
    }

    #[tokio::test]
    async fn splits_lines_across_buffer_refills_and_keeps_the_unterminated_last() {
        let input = b"INFO 05-01 12:00:00 api_server.py:1: vLLM API server version 0.10.1.1\r\n\
                      llama_model_loader: loaded meta data\n\xff bad byte\nno newline";
        assert_eq!(
            lines_of(input).await,
            [
                "INFO 05-01 12:00:00 api_server.py:1: vLLM API server version 0.10.1.1",
                "llama_model_loader: loaded meta data",
                "\u{fffd} bad byte",
                "no newline",
            ]
        );
    }

    #[tokio::test]
    async fn cuts_a_runaway_line() {
        let mut input = vec![b'#'; 3 * MAX_LINE];
        input.extend_from_slice(b"\nnext\n");
        let lines = lines_of(&input).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let tail = LogTail::new(2);
        for line in ["one", "two", "three"] {
            tail.push(line.to_string());
        }
        assert_eq!(tail.lines(), ["two", "three"]);
        let none = LogTail::new(0);
        none.push("x".into());
        assert!(none.lines().is_empty());
    }
}

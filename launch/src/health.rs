//! Readiness probes: a minimal HTTP/1.1 `GET` (or a bare TCP connect) on the local machine,
//! repeated with exponential back-off until it passes or a deadline expires.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use super::LaunchOptions;
use inferkit_core::launch::HealthCheck;
use inferkit_core::{Error, Result};

/// Most bytes read while looking for the status line; a status line is a few dozen bytes.
const STATUS_LINE_LIMIT: usize = 1024;

/// Refuses a health path that cannot be sent as an HTTP request target as it is.
pub(super) fn validate(check: Option<&HealthCheck>) -> Result<()> {
    let Some(path) = check.and_then(|c| c.path.as_deref()) else {
        return Ok(());
    };
    let plain = path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        return Ok(());
    }
    Err(Error::invalid_parameter(
        "health.path",
        format!("`{path}` is not an HTTP path (it must start with `/` and contain no spaces)"),
    ))
}

/// Probes `check` until it passes; `Err` says why the last probe failed when the deadline
/// passes first. Without a check the process is ready at once.
pub(super) async fn wait_ready(
    check: Option<&HealthCheck>,
    options: &LaunchOptions,
) -> Result<(), String> {
    let Some(check) = check else {
        return Ok(());
    };
    let limit = Duration::from_millis(options.ready_timeout_ms);
    let deadline = Instant::now() + limit;
    let mut delay = Duration::from_millis(options.probe_initial_delay_ms);
    let max_delay = Duration::from_millis(options.probe_max_delay_ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let probe_limit = left.min(Duration::from_millis(options.probe_timeout_ms));
        let last = match timeout(probe_limit, probe(check)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => why,
            Err(_) => format!("no answer within {probe_limit:?}"),
        };
        if Instant::now() + delay >= deadline {
            return Err(format!("not ready within {limit:?}: {last}"));
        }
        sleep(delay).await;
        delay = (delay * 2).min(max_delay);
    }
}

/// One probe: connect to `127.0.0.1:port` and, with a path, `GET` it and expect status 200.
async fn probe(check: &HealthCheck) -> Result<(), String> {
    let address = (Ipv4Addr::LOCALHOST, check.port);
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to 127.0.0.1:{}: {e}", check.port))?;
    let Some(path) = &check.path else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        check.port
    );
    let failed = |e: std::io::Error| format!("GET {path}: {e}");
    stream.write_all(request.as_bytes()).await.map_err(failed)?;
    let line = read_status_line(&mut stream).await.map_err(failed)?;
    match status_code(&line) {
        Some(200) => Ok(()),
        Some(code) => Err(format!("GET {path} answered {code}")),
        None => Err(format!("GET {path}: not an HTTP status line: {line:?}")),
    }
}

/// Reads up to the first CRLF (or the end of the stream), at most [`STATUS_LINE_LIMIT`] bytes.
async fn read_status_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while head.len() < STATUS_LINE_LIMIT && !head.windows(2).any(|w| w == b"\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len().min(STATUS_LINE_LIMIT));
    Ok(String::from_utf8_lossy(&head[..end]).into_owned())
}

/// The status code of `HTTP/1.x CODE REASON`.
fn status_code(line: &str) -> Option<u16> {
    let mut words = line.split(' ');
    let version = words.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_codes_of_real_status_lines() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.1 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(status_code("HTTP/1.1 200"), Some(200));
        assert_eq!(status_code("SSH-2.0-OpenSSH_9.6"), None);
        assert_eq!(status_code("HTTP/1.1 20 OK"), None);
        assert_eq!(status_code(""), None);
    }

    #[test]
    fn health_paths_must_be_plain_request_targets() {
        let check = |path: &str| HealthCheck {
            port: 1,
            path: Some(path.to_string()),
        };
        assert!(validate(Some(&check("/health"))).is_ok());
        assert!(validate(Some(&check("/v1/models?x=1"))).is_ok());
        assert!(validate(None).is_ok());
        for bad in ["health", "/a b", "/x\r\nHost: evil", ""] {
            let err = validate(Some(&check(bad))).unwrap_err();
            assert!(
                matches!(err, Error::InvalidParameter { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    /// Serves one connection with `response` and returns the request it received.
    async fn serve_once(response: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 1024];
            let n = socket.read(&mut request).await.unwrap();
            socket.write_all(response).await.unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_loading_llama_server_is_not_ready_and_the_request_is_exact() {
        // llama.cpp server while loading the model: 503 with an `unavailable_error`.
        let (port, server) = serve_once(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n\
              Content-Length: 75\r\n\r\n\
              {\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}",
        )
        .await;
        let check = HealthCheck {
            port,
            path: Some("/health".into()),
        };
        assert_eq!(
            probe(&check).await,
            Err("GET /health answered 503".to_string())
        );
        let request = server.await.unwrap();
        assert_eq!(
            request,
            format!(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\
                 Connection: close\r\n\r\n"
            )
        );
    }

    #[tokio::test]
    async fn status_200_is_ready() {
        let (port, _server) = serve_once(b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"ok\"}").await;
        let check = HealthCheck {
            port,
            path: Some("/health".into()),
        };
        assert_eq!(probe(&check).await, Ok(()));
    }

    #[tokio::test]
    async fn a_closed_port_times_out_with_the_last_reason() {
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let options = LaunchOptions {
            ready_timeout_ms: 300,
            probe_initial_delay_ms: 10,
            probe_max_delay_ms: 50,
            ..LaunchOptions::default()
        };
        let check = HealthCheck { port, path: None };
        let err = wait_ready(Some(&check), &options).await.unwrap_err();
        assert!(
            err.starts_with("not ready within 300ms: cannot connect to 127.0.0.1:"),
            "{err}"
        );
    }
}

//! A small HTTP/1.1 server on 127.0.0.1 for tests and benchmarks: one request per connection,
//! a handler deciding each reply, an injected delay, `Range` support, faults (dropping the
//! connection midway), counters of requests and body bytes written, and each request's
//! arrival and end (for [`critical_path`]: how many requests in a row a client waited for,
//! whatever the machine's load).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
}

impl Req {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A reply.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after writing this many body bytes.
    pub drop_after: Option<usize>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::default()
        }
    }

    pub fn json(text: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: text.into().into_bytes(),
            drop_after: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `bytes` as a whole file, honouring the request's `Range`.
    pub fn file(bytes: &[u8], req: &Req, etag: &str) -> Reply {
        let len = bytes.len() as u64;
        let range = req.header("range").and_then(|r| parse_range(r, len));
        let reply = match range {
            Some((start, end)) => Reply {
                status: 206,
                headers: vec![(
                    "Content-Range".into(),
                    format!("bytes {start}-{}/{len}", end - 1),
                )],
                body: bytes[start as usize..end as usize].to_vec(),
                drop_after: None,
            },
            None if req.header("range").is_some() => {
                return Reply::status(416).header("Content-Range", format!("bytes */{len}"));
            }
            None => Reply {
                status: 200,
                headers: Vec::new(),
                body: bytes.to_vec(),
                drop_after: None,
            },
        };
        reply
            .header("ETag", format!("\"{etag}\""))
            .header("Accept-Ranges", "bytes")
    }
}

/// `bytes=a-b` or `bytes=a-` as `start..end` (end exclusive), clipped to the length.
fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        len
    } else {
        b.parse::<u64>().ok()?.saturating_add(1).min(len)
    };
    (start < end).then_some((start, end))
}

pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// Counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
}

/// A running server; it stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    pub log: Arc<Mutex<Vec<Req>>>,
    /// When each request arrived and when its reply started.
    pub spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

/// When a request arrived (its head read) and when its reply started.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub arrived: Instant,
    pub answered: Instant,
}

/// The longest chain of requests each sent after the previous one was answered: the round
/// trips a client spent waiting, one after another. Requests sent together count once,
/// however loaded the machine is, as long as none waits longer than the server's delay to be
/// sent.
pub fn critical_path(spans: &[Span]) -> usize {
    let mut spans = spans.to_vec();
    spans.sort_by_key(|s| s.arrived);
    let mut depth: Vec<usize> = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let before = (0..i)
            .filter(|&j| spans[j].answered <= span.arrived)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves `handler` after waiting `delay` before each reply.
    pub async fn start(handler: Handler, delay: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let counters = Arc::new(Counters::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (c, l, s) = (counters.clone(), log.clone(), spans.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, c, l, s) = (handler.clone(), c.clone(), l.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, handler, delay, c, l, s).await;
                });
            }
        });
        Server {
            addr,
            counters,
            log,
            spans,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    pub fn body_bytes(&self) -> u64 {
        self.counters.body_bytes.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.counters.requests.store(0, Ordering::Relaxed);
        self.counters.body_bytes.store(0, Ordering::Relaxed);
        self.log.lock().unwrap().clear();
        self.spans.lock().unwrap().clear();
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    pub fn requests_log(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Handler,
    delay: Duration,
    counters: Arc<Counters>,
    log: Arc<Mutex<Vec<Req>>>,
    spans: Arc<Mutex<Vec<Span>>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let req = Req {
        method,
        target,
        headers,
    };
    let arrived = Instant::now();
    counters.requests.fetch_add(1, Ordering::Relaxed);
    log.lock().unwrap().push(req.clone());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // The reply's first byte goes out now: a request sent after seeing it arrives later.
    spans.lock().unwrap().push(Span {
        arrived,
        answered: Instant::now(),
    });
    let reply = handler(&req);
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
    stream.write_all(out.as_bytes()).await?;
    let limit = reply
        .drop_after
        .unwrap_or(reply.body.len())
        .min(reply.body.len());
    for chunk in reply.body[..limit].chunks(16 * 1024) {
        stream.write_all(chunk).await?;
        counters
            .body_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    // With `drop_after`, the connection closes short of the announced Content-Length: the
    // client sees the body cut.
    stream.flush().await
}

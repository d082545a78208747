//! A bare HTTP/1.1 server on 127.0.0.1 written byte by byte, for tests that need a broken or hostile peer: error
//! statuses, wrong content types, redirects, stalls, bodies that break off, corrupted git responses. One request
//! per connection; every request is recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// A request as a [`RawServer`] saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request method (`GET`, `POST`, ...).
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// The header lines in order, as `(name, value)` with surrounding spaces trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (as long as `Content-Length` said).
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What a [`RawServer`] does with a request.
pub enum Reply {
    /// Write these bytes and close the connection.
    Send(Vec<u8>),
    /// Write these bytes and then hold the connection open without sending anything more.
    SendThenStall(Vec<u8>),
    /// Write these bytes, then one more byte (`0`) at every interval for as long as the peer reads: a peer that
    /// is never silent long enough for an idle timeout, and never done.
    Trickle(Vec<u8>, Duration),
}

/// An HTTP/1.1 server on 127.0.0.1 that answers every request with what its responder returns, one request
/// per connection, and records what it received.
pub struct RawServer {
    /// The loopback port it listens on.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RawServer {
    /// Starts a server on a free loopback port, on the current tokio runtime, answering with `respond`.
    pub async fn start(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let respond = Arc::clone(&respond);
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let Some((stream, request)) = read_request(stream).await else {
                        return;
                    };
                    record.lock().expect("lock").push(request.clone());
                    serve(stream, respond(&request)).await;
                });
            }
        });
        RawServer { port, seen }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("url")
    }

    /// The requests received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply) {
    match reply {
        Reply::Send(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::SendThenStall(bytes) => {
            let _ = stream.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Reply::Trickle(bytes, interval) => {
            let _ = stream.write_all(&bytes).await;
            while stream.write_all(b"0").await.is_ok() {
                tokio::time::sleep(interval).await;
            }
        }
    }
}

async fn read_request(mut stream: TcpStream) -> Option<(TcpStream, Seen)> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut seen = Seen {
        method,
        target,
        headers,
        body: buffer[head_end + 4..].to_vec(),
    };
    let length: usize = seen
        .header("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while seen.body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        seen.body.extend_from_slice(&chunk[..n]);
    }
    Some((stream, seen))
}

/// A complete response with a `Content-Length`.
pub fn http(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = head(status, headers);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// A status line and headers without the terminating blank line (`Connection: close` added).
pub fn head(status: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (key, value) in headers {
        out.push_str(&format!("{key}: {value}\r\n"));
    }
    out.into_bytes()
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Forwards `request` to the HTTP server at `address` (`host:port`) as an HTTP/1.0 request and returns its whole
/// response, for a [`RawServer`] that stands in front of a real server (e.g. one that demands credentials first).
/// Blocking: use it from a multi-threaded runtime.
pub fn forward(request: &Seen, address: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut head = format!("{} {} HTTP/1.0\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        if !["host", "connection", "authorization"].contains(&name.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Host: {address}\r\nConnection: close\r\n\r\n"));
    let mut stream = std::net::TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&request.body))
        .unwrap_or_else(|e| panic!("cannot forward to {address}: {e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("cannot read the answer of {address}: {e}"));
    response
}

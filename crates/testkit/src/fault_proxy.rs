//! A loopback TCP proxy that stands in front of a real server (moto's S3 endpoint, the git server) and injects
//! faults at seeded random points: it cuts a connection after some bytes in either direction, resets it (RST),
//! stalls it (then cuts or resumes), or answers the connection's first request with an HTTP 500 or 503 instead of
//! forwarding it.
//!
//! A proxy forwards untouched until [`FaultProxy::arm`]ed with a seed and a [`FaultPlan`]; then each new
//! connection draws its fault from a generator seeded with the seed and the connection's number, so the same seed
//! replays the same faults (connections opened at the same moment may be numbered in either order). Every fault
//! that happens is logged ([`FaultProxy::events`]) with the seed, so a failing trial names what to replay. The
//! proxy runs on a runtime of its own, so sync and async tests alike can use it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::rng::Rng;

/// Which way bytes flow through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server (requests).
    ToServer,
    /// From the server to the client (responses).
    ToClient,
}

/// What the proxy does to one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// After `after` bytes went `dir`, both sides are closed (FIN): the peers see a clean end of stream.
    Cut {
        /// The direction whose byte count triggers the fault.
        dir: Direction,
        /// Bytes forwarded in `dir` before the fault.
        after: u64,
    },
    /// After `after` bytes went `dir`, both sides are reset (RST): the peers see "connection reset".
    Reset {
        /// The direction whose byte count triggers the fault.
        dir: Direction,
        /// Bytes forwarded in `dir` before the fault.
        after: u64,
    },
    /// After `after` bytes went `dir`, nothing moves either way for `pause`; then both sides are closed
    /// (`then_cut`) or forwarding resumes.
    Stall {
        /// The direction whose byte count triggers the fault.
        dir: Direction,
        /// Bytes forwarded in `dir` before the fault.
        after: u64,
        /// How long nothing is forwarded.
        pause: Duration,
        /// Close both sides after the pause instead of resuming.
        then_cut: bool,
    },
    /// The connection's first request is answered with this HTTP status (500 or 503) and the connection closed;
    /// the server never sees it.
    Status(u16),
}

/// The kinds of [`Fault`] a plan may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// [`Fault::Cut`].
    Cut,
    /// [`Fault::Reset`].
    Reset,
    /// [`Fault::Stall`].
    Stall,
    /// [`Fault::Status`].
    Status,
}

/// How an armed proxy draws faults.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    /// Chance, in percent, that a new connection gets a fault.
    pub percent: usize,
    /// At most this many faults happen per arming; later ones are not fired and their connections forward.
    pub max_faults: usize,
    /// Cuts, resets and stalls happen after a byte count drawn log-uniformly from `0..=max_offset`.
    pub max_offset: u64,
    /// Stalls last up to this long.
    pub max_stall: Duration,
    /// The kinds to draw from, equally likely.
    pub kinds: Vec<FaultKind>,
}

impl FaultPlan {
    /// A plan drawing `kind` on every connection, once.
    pub fn only(kind: FaultKind) -> FaultPlan {
        FaultPlan {
            percent: 100,
            max_faults: 1,
            kinds: vec![kind],
            ..FaultPlan::default()
        }
    }

    /// The fault connection `n` gets under this plan and `seed`, if any.
    pub fn draw(&self, seed: u64, n: usize) -> Option<Fault> {
        let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        if self.kinds.is_empty() || rng.below(100) >= self.percent {
            return None;
        }
        let dir = if rng.below(2) == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        // Log-uniform: as many cuts inside the first request's headers as deep in a large body.
        let bits = 64 - self.max_offset.leading_zeros() as usize;
        let range = 1u64
            .checked_shl(rng.below(bits + 1) as u32)
            .unwrap_or(u64::MAX)
            .min(self.max_offset.saturating_add(1));
        let after = rng.next_u64() % range;
        Some(match self.kinds[rng.below(self.kinds.len())] {
            FaultKind::Cut => Fault::Cut { dir, after },
            FaultKind::Reset => Fault::Reset { dir, after },
            FaultKind::Stall => Fault::Stall {
                dir,
                after,
                pause: self.max_stall.mul_f64(rng.below(1001) as f64 / 1000.0),
                then_cut: rng.below(2) == 0,
            },
            FaultKind::Status => Fault::Status(if rng.below(2) == 0 { 500 } else { 503 }),
        })
    }
}

impl Default for FaultPlan {
    /// Every kind, on a third of the connections, at most 2 per arming, within 64 KiB, stalls up to 300 ms.
    fn default() -> Self {
        FaultPlan {
            percent: 33,
            max_faults: 2,
            max_offset: 64 << 10,
            max_stall: Duration::from_millis(300),
            kinds: vec![
                FaultKind::Cut,
                FaultKind::Reset,
                FaultKind::Stall,
                FaultKind::Status,
            ],
        }
    }
}

/// What the proxy is doing now: forwarding, or armed with a seed and a plan.
struct Armed {
    seed: u64,
    plan: FaultPlan,
    /// Connections accepted since arming.
    connections: usize,
    /// Faults fired since arming, shared with the connections that may still fire theirs.
    fired: Arc<AtomicUsize>,
}

struct Shared {
    name: String,
    upstream: SocketAddr,
    armed: Mutex<Option<Armed>>,
    /// A fault for the first request containing a pattern ([`FaultProxy::arm_on`]).
    targeted: Mutex<Option<(Vec<u8>, Fault)>>,
    events: Mutex<Vec<String>>,
}

impl Shared {
    fn log(&self, line: String) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{}: {line}", self.name));
    }
}

/// A running fault proxy on a loopback port (see the module docs). Stops accepting when dropped.
pub struct FaultProxy {
    /// The port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

/// The runtime every proxy runs on, for as long as the process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the fault proxy's runtime: {e}"))
    })
}

impl FaultProxy {
    /// Starts a proxy named `name` (it prefixes the events) in front of the server on loopback port
    /// `upstream_port`, forwarding untouched until armed.
    pub fn start(name: &str, upstream_port: u16) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fault proxy {name}: cannot bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fault proxy {name}: no address: {e}"))
            .port();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("fault proxy {name}: {e}"));
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            armed: Mutex::new(None),
            targeted: Mutex::new(None),
            events: Mutex::new(Vec::new()),
        });
        let state = Arc::clone(&shared);
        let accept = runtime().spawn(async move {
            let listener = TcpListener::from_std(listener)
                .unwrap_or_else(|e| panic!("fault proxy: cannot listen: {e}"));
            while let Ok((client, _)) = listener.accept().await {
                let drawn = state
                    .armed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                    .map(|armed| {
                        let n = armed.connections;
                        armed.connections += 1;
                        let fault = armed.plan.draw(armed.seed, n);
                        (
                            n,
                            armed.seed,
                            fault,
                            Arc::clone(&armed.fired),
                            armed.plan.max_faults,
                        )
                    });
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let fault = drawn.and_then(|(n, seed, fault, fired, max)| {
                        fault.map(|f| Trigger {
                            fault: f,
                            label: format!("seed {seed} connection {n}"),
                            fired,
                            max,
                        })
                    });
                    handle(&state, client, fault).await;
                });
            }
        });
        FaultProxy {
            port,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, new connections draw their faults from `plan` with `seed` (connections are numbered from 0
    /// again). Clears the events.
    pub fn arm(&self, seed: u64, plan: FaultPlan) {
        self.shared
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.shared.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Armed {
            seed,
            plan,
            connections: 0,
            fired: Arc::new(AtomicUsize::new(0)),
        });
    }

    /// Fires `fault` (a cut, reset or stall) once, on the connection that first forwards bytes containing
    /// `pattern` to the server (within one read, e.g. a request line), its byte count starting where that read
    /// started (towards the server) or at the bytes already forwarded to the client (towards the client). Clears
    /// the events; [`FaultProxy::disarm`] drops it if it has not fired.
    pub fn arm_on(&self, pattern: &[u8], fault: Fault) {
        self.shared
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self
            .shared
            .targeted
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((pattern.to_vec(), fault));
    }

    /// From now on, new connections are forwarded untouched, and connections that have not fired their fault yet
    /// do not fire it. Returns the faults that happened since the last arming, one line each, in order, e.g.
    /// `s3: seed 7 connection 2: reset after 1234 bytes to the client`, and clears them.
    pub fn disarm(&self) -> Vec<String> {
        if let Some(armed) = self
            .shared
            .armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            armed.fired.store(usize::MAX / 2, Ordering::SeqCst);
        }
        std::mem::take(&mut *self.shared.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The faults that happened since the last arming (see [`FaultProxy::disarm`]).
    pub fn events(&self) -> Vec<String> {
        self.shared
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A connection's fault, fired only while the arming's budget allows.
struct Trigger {
    fault: Fault,
    label: String,
    fired: Arc<AtomicUsize>,
    max: usize,
}

impl Trigger {
    /// Takes one fault from the budget; false when it is spent (the connection forwards untouched).
    fn fire(&self) -> bool {
        self.fired.fetch_add(1, Ordering::SeqCst) < self.max
    }
}

/// The status line and body of an injected HTTP error (an S3-style XML error, which the git client reads as text).
fn status_response(code: u16) -> Vec<u8> {
    let (reason, s3_code) = match code {
        503 => ("Service Unavailable", "SlowDown"),
        _ => ("Internal Server Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3_code}</Code>\
         <Message>injected fault</Message></Error>"
    );
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads the client's first request (head and a `Content-Length` body up to 1 MiB, so that closing does not
/// reset the connection under an answer the client has not read) and answers it with `code`.
async fn answer_status(client: &mut TcpStream, code: u16) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = crate::raw_http::find(&buffer, b"\r\n\r\n") {
            break end + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if buffer.len() + n > 64 << 10 => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let length = String::from_utf8_lossy(&buffer[..head_end])
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = buffer.len() - head_end;
    while body < length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body += n,
        }
    }
    let _ = client.write_all(&status_response(code)).await;
    let _ = client.shutdown().await;
}

/// Serves one accepted connection: forwards it to the upstream server, firing `trigger`'s fault if any.
async fn handle(shared: &Shared, mut client: TcpStream, trigger: Option<Trigger>) {
    let trigger = trigger.filter(|t| !matches!(t.fault, Fault::Status(_)) || t.fire());
    if let Some(Trigger {
        fault: Fault::Status(code),
        label,
        ..
    }) = &trigger
    {
        shared.log(format!(
            "{label}: answered the first request with HTTP {code}"
        ));
        answer_status(&mut client, *code).await;
        return;
    }
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        shared.log(format!("cannot connect to {}", shared.upstream));
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut relay = Relay {
        shared,
        client: (client_read, Some(client_write)),
        server: (server_read, Some(server_write)),
        forwarded: [0, 0],
        trigger,
    };
    relay.run().await;
}

/// The two sides of a proxied connection and what has passed between them.
struct Relay<'a> {
    shared: &'a Shared,
    client: (OwnedReadHalf, Option<OwnedWriteHalf>),
    server: (OwnedReadHalf, Option<OwnedWriteHalf>),
    /// Bytes forwarded to the server and to the client.
    forwarded: [u64; 2],
    /// The fault still to fire.
    trigger: Option<Trigger>,
}

/// What happens to the connection after a fault fired.
enum After {
    Continue,
    Close,
}

impl Relay<'_> {
    async fn run(&mut self) {
        let mut up = vec![0u8; 16 << 10];
        let mut down = vec![0u8; 16 << 10];
        let (mut client_open, mut server_open) = (true, true);
        while client_open || server_open {
            let (dir, read) = tokio::select! {
                r = self.client.0.read(&mut up), if client_open => (Direction::ToServer, r),
                r = self.server.0.read(&mut down), if server_open => (Direction::ToClient, r),
            };
            let n = match read {
                Ok(n) => n,
                // A peer that reset its side: reset the other too.
                Err(_) => return self.reset(),
            };
            let (buf, writer) = match dir {
                Direction::ToServer => (&up[..n], &mut self.server.1),
                Direction::ToClient => (&down[..n], &mut self.client.1),
            };
            if n == 0 {
                // Half-close: pass the end of stream on.
                if let Some(mut w) = writer.take() {
                    let _ = w.shutdown().await;
                }
                match dir {
                    Direction::ToServer => client_open = false,
                    Direction::ToClient => server_open = false,
                }
                continue;
            }
            let buf = buf.to_vec();
            if let After::Close = self.forward(dir, &buf).await {
                return;
            }
        }
    }

    /// Gives this connection the targeted fault if `buf`, going to the server, contains its pattern.
    fn take_targeted(&mut self, buf: &[u8]) {
        let mut targeted = self
            .shared
            .targeted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let found = targeted
            .as_ref()
            .is_some_and(|(pattern, _)| crate::raw_http::find(buf, pattern).is_some());
        let Some((pattern, fault)) = targeted.take_if(|_| found) else {
            return;
        };
        let rebase = |dir: Direction, after: u64| after + self.forwarded[dir as usize];
        let fault = match fault {
            Fault::Cut { dir, after } => Fault::Cut {
                dir,
                after: rebase(dir, after),
            },
            Fault::Reset { dir, after } => Fault::Reset {
                dir,
                after: rebase(dir, after),
            },
            Fault::Stall {
                dir,
                after,
                pause,
                then_cut,
            } => Fault::Stall {
                dir,
                after: rebase(dir, after),
                pause,
                then_cut,
            },
            Fault::Status(_) => fault,
        };
        self.trigger = Some(Trigger {
            fault,
            label: format!("request with {:?}", String::from_utf8_lossy(&pattern)),
            fired: Arc::new(AtomicUsize::new(0)),
            max: 1,
        });
    }

    /// Forwards `buf` in `dir`, firing the fault if its point falls within.
    async fn forward(&mut self, dir: Direction, buf: &[u8]) -> After {
        if dir == Direction::ToServer && self.trigger.is_none() {
            self.take_targeted(buf);
        }
        let index = dir as usize;
        let point = match self.trigger.as_ref().map(|t| t.fault) {
            Some(Fault::Cut { dir: d, after })
            | Some(Fault::Reset { dir: d, after })
            | Some(Fault::Stall { dir: d, after, .. })
                if d == dir && after < self.forwarded[index] + buf.len() as u64 =>
            {
                Some((after.saturating_sub(self.forwarded[index])) as usize)
            }
            _ => None,
        };
        let Some(split) = point else {
            return self.write(dir, buf).await;
        };
        let Some(trigger) = self.trigger.take().filter(Trigger::fire) else {
            return self.write(dir, buf).await;
        };
        if let After::Close = self.write(dir, &buf[..split]).await {
            return After::Close;
        }
        let to = match dir {
            Direction::ToServer => "to the server",
            Direction::ToClient => "to the client",
        };
        let at = self.forwarded[index];
        match trigger.fault {
            Fault::Cut { .. } => {
                self.shared
                    .log(format!("{}: cut after {at} bytes {to}", trigger.label));
                self.close().await;
                After::Close
            }
            Fault::Reset { .. } => {
                self.shared
                    .log(format!("{}: reset after {at} bytes {to}", trigger.label));
                self.reset();
                After::Close
            }
            Fault::Stall {
                pause, then_cut, ..
            } => {
                let then = if then_cut { "then cut" } else { "then resumed" };
                self.shared.log(format!(
                    "{}: stalled {} ms after {at} bytes {to}, {then}",
                    trigger.label,
                    pause.as_millis()
                ));
                tokio::time::sleep(pause).await;
                if then_cut {
                    self.close().await;
                    return After::Close;
                }
                self.write(dir, &buf[split..]).await
            }
            Fault::Status(_) => self.write(dir, &buf[split..]).await,
        }
    }

    async fn write(&mut self, dir: Direction, buf: &[u8]) -> After {
        let writer = match dir {
            Direction::ToServer => &mut self.server.1,
            Direction::ToClient => &mut self.client.1,
        };
        let Some(w) = writer.as_mut() else {
            return After::Continue;
        };
        if w.write_all(buf).await.is_err() {
            self.reset();
            return After::Close;
        }
        self.forwarded[dir as usize] += buf.len() as u64;
        After::Continue
    }

    /// Closes both sides with a FIN.
    async fn close(&mut self) {
        for writer in [&mut self.client.1, &mut self.server.1] {
            if let Some(mut w) = writer.take() {
                let _ = w.shutdown().await;
            }
        }
    }

    /// Resets both sides: with a zero linger time, closing sends RST instead of FIN. The write halves are
    /// forgotten (dropping one would send a FIN first); the sockets close when the relay is dropped, right after.
    fn reset(&mut self) {
        for read in [&self.client.0, &self.server.0] {
            let stream: &TcpStream = read.as_ref();
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
        for writer in [&mut self.client.1, &mut self.server.1] {
            if let Some(w) = writer.take() {
                w.forget();
            }
        }
    }
}

//! Where source requests may go: never to a link-local address (169.254.0.0/16 and fe80::/10, where cloud
//! metadata services answer with credentials; fd00:ec2::254, EC2's IPv6 metadata address) nor to the Lambda Runtime
//! API, and to loopback only when the policy allows it (the CLI does; the Lambda function does not unless
//! `MIRROR_ALLOW_LOOPBACK=1`).
//!
//! The check is made on the addresses a connection would really use: the resolver drops refused addresses of a
//! name (so a name that resolves to 169.254.169.254 is refused too), and the connector checks an address given
//! literally before connecting and the peer of every connection after, port included.

use hyper::Uri;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// Set to `1` in a Lambda function's environment to let it reach loopback sources (tests, local emulators).
pub const ALLOW_LOOPBACK_ENV: &str = "MIRROR_ALLOW_LOOPBACK";

/// Names the Lambda Runtime API (`host:port`) in a Lambda function's environment.
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";

/// EC2's instance metadata service on IPv6.
const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Which addresses source connections may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Whether loopback addresses (127.0.0.0/8, ::1, and the unspecified address, which reaches the local host)
    /// may be used.
    pub allow_loopback: bool,
    /// The Lambda Runtime API, never a source.
    pub runtime_api: Option<SocketAddr>,
}

impl Default for AddressPolicy {
    /// The command line's policy: loopback allowed (a local git server is a normal source).
    fn default() -> Self {
        AddressPolicy {
            allow_loopback: true,
            runtime_api: None,
        }
    }
}

impl AddressPolicy {
    /// The Lambda function's policy from its environment: loopback only with [`ALLOW_LOOPBACK_ENV`]`=1`, and
    /// never the Runtime API of [`RUNTIME_API_ENV`].
    pub fn lambda_from_env() -> Self {
        AddressPolicy {
            allow_loopback: std::env::var(ALLOW_LOOPBACK_ENV).is_ok_and(|value| value == "1"),
            runtime_api: std::env::var(RUNTIME_API_ENV)
                .ok()
                .and_then(|text| runtime_api_address(&text)),
        }
    }

    /// Why a connection to `address` is refused, or `None` if it may be made.
    pub fn refusal(&self, address: SocketAddr) -> Option<&'static str> {
        if self.runtime_api == Some(address) {
            return Some("it is the Lambda Runtime API");
        }
        let ip = match address.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == EC2_METADATA_V6,
        };
        if link_local {
            return Some("it is link-local or a cloud metadata address");
        }
        if !self.allow_loopback && (ip.is_loopback() || ip.is_unspecified()) {
            return Some(
                "it is a loopback address (a Lambda function reaches one only with MIRROR_ALLOW_LOOPBACK=1)",
            );
        }
        None
    }

    fn check(&self, address: SocketAddr, host: &str) -> io::Result<()> {
        match self.refusal(address) {
            None => Ok(()),
            Some(reason) => Err(refused(host, address, reason)),
        }
    }
}

/// The error of a refused address (permission denied, so that it is not taken for a network failure worth a
/// retry).
fn refused(host: &str, address: SocketAddr, reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refusing to connect to {host} ({address}): {reason}"),
    )
}

/// `host:port` (possibly `http://host:port/path`, as emulators give it) as an address; `localhost` is
/// 127.0.0.1, other names are not resolved.
fn runtime_api_address(text: &str) -> Option<SocketAddr> {
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = text.split('/').next()?;
    if let Ok(address) = authority.parse() {
        return Some(address);
    }
    let port = authority.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The resolver of source connections: the system's, without the addresses the policy refuses.
#[derive(Clone)]
pub(super) struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|address| policy.refusal(*address).is_none())
                .collect();
            match (allowed.is_empty(), resolved.first()) {
                (true, Some(&first)) => Err(refused(
                    host,
                    first,
                    policy.refusal(first).unwrap_or("refused"),
                )),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// The TCP connector of source connections: [`GuardedResolver`] for names, and the policy applied to an address
/// given literally before connecting and to the peer of every connection (port included) after.
#[derive(Clone)]
pub(super) struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: Arc<AddressPolicy>,
}

impl GuardedConnector {
    /// A connector enforcing `policy`; `configure` sets up the TCP side (timeouts, no-delay...).
    pub(super) fn new(
        policy: AddressPolicy,
        configure: impl FnOnce(&mut HttpConnector<GuardedResolver>),
    ) -> Self {
        let policy = Arc::new(policy);
        let mut inner = HttpConnector::new_with_resolver(GuardedResolver {
            policy: policy.clone(),
        });
        configure(&mut inner);
        GuardedConnector { inner, policy }
    }
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let policy = self.policy.clone();
        let host = uri.host().unwrap_or_default().to_owned();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if let Some(ip) = literal {
            if let Err(error) = policy.check(SocketAddr::new(ip, port), &host) {
                return Box::pin(async move { Err(error.into()) });
            }
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let stream = connecting.await?;
            let peer = stream.inner().peer_addr()?;
            policy.check(peer, &host)?;
            Ok(stream)
        })
    }
}

#[cfg(test)]
mod tests;

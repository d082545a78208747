//! The smart-HTTP source client (`mirror_git_to_s3::upstream`) against the real `git http-backend` (lighttpd,
//! see crates/testkit) and against small broken or hostile HTTP servers on 127.0.0.1 that this file writes byte
//! by byte: error statuses, dumb servers, redirect chains across hosts, redirect loops, stalls, bodies that
//! break off, oversize advertisements, TLS to a plain server and a closed port.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use mirror_git_to_s3::upstream::{
    BodyStream, UpstreamClient, UpstreamError, UpstreamOptions, ADVERTISEMENT_CONTENT_TYPE,
    REQUEST_CONTENT_TYPE, RESULT_CONTENT_TYPE,
};
use testkit::raw_http::{find, head, http, RawServer, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use url::Url;

/// A minimal valid advertisement of an empty repository.
const EMPTY_ADVERTISEMENT: &[u8] = b"001e# service=git-upload-pack\n0000";
/// Idle timeout of clients in the stall tests.
const SHORT: Duration = Duration::from_millis(300);

fn client(options: UpstreamOptions) -> UpstreamClient {
    UpstreamClient::new(options).expect("client")
}

fn default_client() -> UpstreamClient {
    client(UpstreamOptions::default())
}

fn with_token(token: &str) -> UpstreamClient {
    client(UpstreamOptions {
        token: Some(token.to_owned()),
        ..UpstreamOptions::default()
    })
}

fn short_idle() -> UpstreamClient {
    client(UpstreamOptions {
        idle_timeout: SHORT,
        ..UpstreamOptions::default()
    })
}

fn url(text: &str) -> Url {
    Url::parse(text).expect("url")
}

fn basic(pair: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// One pkt-line.
fn pkt(line: &str) -> String {
    format!("{:04x}{line}", line.len() + 4)
}

async fn collect(mut stream: BodyStream) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next_chunk().await? {
        assert!(!chunk.is_empty(), "next_chunk returned an empty chunk");
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------------------
// The real git http-backend

#[tokio::test]
async fn real_backend_advertisement_then_pack() {
    let repo = testkit::small_repo();
    let name = repo.file_name().and_then(|n| n.to_str()).expect("name");
    let repo_url = testkit::git_server().url(name);
    let client = default_client();

    // A trailing slash is accepted and dropped.
    let (endpoint, body) = client
        .advertisement(&url(&format!("{repo_url}/")))
        .await
        .expect("advertisement");
    assert!(
        body.starts_with(b"001e# service=git-upload-pack\n0000"),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(endpoint.url().as_str(), repo_url);

    // The first ref line: 4 hex digits of length, then the object id.
    let first_ref = &body[EMPTY_ADVERTISEMENT.len()..];
    let head = std::str::from_utf8(&first_ref[4..44]).expect("hex oid");
    let main = testkit::git(["rev-parse", "refs/heads/main"], &repo);
    assert_eq!(head, main.trim());

    let request = format!("{}0000{}", pkt(&format!("want {head}\n")), pkt("done\n"));
    let stream = client
        .upload_pack(&endpoint, Bytes::from(request))
        .await
        .expect("upload-pack");
    let body = collect(stream).await.expect("pack response");
    assert!(
        body.starts_with(b"0008NAK\n"),
        "{:?}",
        String::from_utf8_lossy(&body[..body.len().min(64)])
    );
    let pack = find(&body, b"PACK").expect("response contains a pack");
    assert_eq!(&body[pack + 4..pack + 8], &[0, 0, 0, 2], "pack version 2");

    assert_eq!(
        testkit::git_server().requests(name),
        [
            format!("GET /{name}/info/refs?service=git-upload-pack -"),
            format!("POST /{name}/git-upload-pack -"),
        ]
    );
}

#[tokio::test]
async fn real_backend_missing_repository_is_not_found() {
    let missing = url(&testkit::git_server().url("no-such-repository.git"));
    let error = default_client().advertisement(&missing).await.unwrap_err();
    assert!(matches!(error, UpstreamError::NotFound { .. }), "{error}");
    assert!(
        error.to_string().contains("repository not found"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Loopback servers written here

fn advertisement_ok() -> Vec<u8> {
    http(
        "200 OK",
        &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)],
        EMPTY_ADVERTISEMENT,
    )
}

/// A URL with user and password in it.
fn with_credentials(mut target: Url, user: &str, password: &str) -> Url {
    target.set_username(user).expect("user");
    target.set_password(Some(password)).expect("password");
    target
}

// ---------------------------------------------------------------------------------------------------------
// Statuses, content types, encodings

#[tokio::test]
async fn not_found_names_the_url_without_credentials_and_sends_them_as_basic_auth() {
    let server =
        RawServer::start(|_| Reply::Send(http("404 Not Found", &[], b"no such repo"))).await;
    let repo = with_credentials(server.url("/org/repo.git"), "bob", "s3cret");
    let error = default_client().advertisement(&repo).await.unwrap_err();
    assert!(matches!(error, UpstreamError::NotFound { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("repository not found")
            && text.contains("/org/repo.git/info/refs?service=git-upload-pack"),
        "{text}"
    );
    assert!(!text.contains("s3cret") && !text.contains("bob"), "{text}");
    assert!(!format!("{error:?}").contains("s3cret"));

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.target,
        "/org/repo.git/info/refs?service=git-upload-pack"
    );
    assert_eq!(request.header("authorization"), Some(&*basic("bob:s3cret")));
    assert_eq!(request.header("accept-encoding"), Some("identity"));
    assert!(request
        .header("user-agent")
        .is_some_and(|agent| agent.starts_with("git/")));
}

#[tokio::test]
async fn unauthorized_without_and_with_a_token() {
    let server = RawServer::start(|request| {
        let status = if request.header("authorization").is_some() {
            "403 Forbidden"
        } else {
            "401 Unauthorized"
        };
        Reply::Send(http(
            status,
            &[("WWW-Authenticate", "Basic realm=\"git\"")],
            b"",
        ))
    })
    .await;
    let repo = server.url("/private");

    let error = default_client().advertisement(&repo).await.unwrap_err();
    assert!(
        matches!(
            error,
            UpstreamError::AuthenticationRequired { status: 401, .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("set a token"), "{error}");

    let error = with_token("t0ken").advertisement(&repo).await.unwrap_err();
    assert!(
        matches!(error, UpstreamError::AccessDenied { status: 403, .. }),
        "{error}"
    );
    assert!(!error.to_string().contains("t0ken"), "{error}");

    let mut alice = server.url("/private");
    alice.set_username("alice").expect("user");
    let user_and_token = with_token("t0ken").advertisement(&alice).await.unwrap_err();
    assert!(matches!(user_and_token, UpstreamError::AccessDenied { .. }));

    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[1].header("authorization"),
        Some(&*basic("x-access-token:t0ken"))
    );
    assert_eq!(
        seen[2].header("authorization"),
        Some(&*basic("alice:t0ken"))
    );
}

#[tokio::test]
async fn dumb_server_is_not_smart() {
    let server = RawServer::start(|request| {
        let body = b"0123456789012345678901234567890123456789\trefs/heads/main\n";
        if request.target.starts_with("/plain/") {
            Reply::Send(http("200 OK", &[("Content-Type", "text/plain")], body))
        } else {
            Reply::Send(http("200 OK", &[], body))
        }
    })
    .await;
    let error = default_client()
        .advertisement(&server.url("/plain/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::NotSmartServer { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("not a smart git HTTP server")
            && text.contains("text/plain")
            && text.contains(ADVERTISEMENT_CONTENT_TYPE),
        "{text}"
    );

    let error = default_client()
        .advertisement(&server.url("/untyped/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UpstreamError::NotSmartServer { found, .. } if found == "none"),
        "{error}"
    );
}

#[tokio::test]
async fn content_type_parameters_and_case_are_accepted() {
    let server = RawServer::start(|_| {
        Reply::Send(http(
            "200 OK",
            &[(
                "Content-Type",
                "Application/X-Git-Upload-Pack-Advertisement; charset=binary",
            )],
            EMPTY_ADVERTISEMENT,
        ))
    })
    .await;
    let (_, body) = default_client()
        .advertisement(&server.url("/repo"))
        .await
        .expect("advertisement");
    assert_eq!(&body[..], EMPTY_ADVERTISEMENT);
}

#[tokio::test]
async fn compressed_response_is_refused() {
    let server = RawServer::start(|_| {
        Reply::Send(http(
            "200 OK",
            &[
                ("Content-Type", ADVERTISEMENT_CONTENT_TYPE),
                ("Content-Encoding", "gzip"),
            ],
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        ))
    })
    .await;
    let error = default_client()
        .advertisement(&server.url("/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UpstreamError::UnsupportedEncoding { encoding, .. } if encoding == "gzip"),
        "{error}"
    );
}

#[tokio::test]
async fn server_error_quotes_a_bounded_sanitized_excerpt() {
    let server = RawServer::start(|_| {
        let mut body = b"fatal:\r\n  the\tbackend\x1b crashed ".to_vec();
        body.extend(std::iter::repeat_n(b'x', 10_000));
        Reply::Send(http("500 Internal Server Error", &[], &body))
    })
    .await;
    let error = default_client()
        .advertisement(&server.url("/repo"))
        .await
        .unwrap_err();
    match &error {
        UpstreamError::Status { status, body, .. } => {
            assert_eq!(*status, 500);
            assert!(body.starts_with("fatal: the backend crashed xxx"), "{body}");
            assert!(body.len() <= 200, "{} bytes", body.len());
        }
        other => panic!("expected a status error, got {other}"),
    }
}

#[tokio::test]
async fn upload_pack_checks_the_result_content_type() {
    let server = RawServer::start(|request| {
        if request.method == "GET" {
            Reply::Send(advertisement_ok())
        } else {
            Reply::Send(http(
                "200 OK",
                &[("Content-Type", "text/html")],
                b"<html>login</html>",
            ))
        }
    })
    .await;
    let client = default_client();
    let (endpoint, _) = client
        .advertisement(&server.url("/repo"))
        .await
        .expect("advertisement");
    let error = client
        .upload_pack(&endpoint, Bytes::from_static(b"0000"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UpstreamError::NotSmartServer { expected, found, .. }
            if *expected == RESULT_CONTENT_TYPE && found == "text/html"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Redirects

#[tokio::test]
async fn redirect_chain_moves_the_repository_and_drops_credentials_for_another_host() {
    let new_host = RawServer::start(|request| match request.method.as_str() {
        "GET" if request.target == "/new/repo.git/info/refs?service=git-upload-pack" => {
            Reply::Send(advertisement_ok())
        }
        "POST" if request.target == "/new/repo.git/git-upload-pack" => Reply::Send(http(
            "200 OK",
            &[("Content-Type", RESULT_CONTENT_TYPE)],
            b"0008NAK\n",
        )),
        _ => Reply::Send(http("404 Not Found", &[], b"")),
    })
    .await;
    let new_port = new_host.port;
    let old_host = RawServer::start(move |request| {
        if request.target.starts_with("/old/") {
            // Relative redirect on the same host.
            Reply::Send(http(
                "301 Moved Permanently",
                &[("Location", "/mid/info/refs?service=git-upload-pack")],
                b"",
            ))
        } else {
            // Absolute redirect to another port: another origin.
            let location = format!(
                "http://127.0.0.1:{new_port}/new/repo.git/info/refs?service=git-upload-pack"
            );
            Reply::Send(http("302 Found", &[("Location", &location)], b""))
        }
    })
    .await;

    let client = with_token("t0ken");
    let (endpoint, body) = client
        .advertisement(&old_host.url("/old"))
        .await
        .expect("advertisement after redirects");
    assert_eq!(
        endpoint.url().as_str(),
        format!("http://127.0.0.1:{new_port}/new/repo.git")
    );
    assert_eq!(&body[..], EMPTY_ADVERTISEMENT);

    let request =
        Bytes::from_static(b"0032want 0123456789012345678901234567890123456789\n00000009done\n");
    let stream = client
        .upload_pack(&endpoint, request.clone())
        .await
        .expect("upload-pack");
    assert_eq!(collect(stream).await.expect("body"), b"0008NAK\n");

    let old_seen = old_host.seen();
    assert_eq!(
        old_seen
            .iter()
            .map(|s| s.target.as_str())
            .collect::<Vec<_>>(),
        [
            "/old/info/refs?service=git-upload-pack",
            "/mid/info/refs?service=git-upload-pack"
        ]
    );
    let token = basic("x-access-token:t0ken");
    assert!(old_seen
        .iter()
        .all(|s| s.header("authorization") == Some(&*token)));

    let new_seen = new_host.seen();
    assert_eq!(new_seen.len(), 2);
    assert!(
        new_seen.iter().all(|s| s.header("authorization").is_none()),
        "credentials leaked to another host: {new_seen:?}"
    );
    let post = &new_seen[1];
    assert_eq!(post.method, "POST");
    assert_eq!(post.header("content-type"), Some(REQUEST_CONTENT_TYPE));
    assert_eq!(post.header("accept"), Some(RESULT_CONTENT_TYPE));
    assert_eq!(post.body, request);
}

#[tokio::test]
async fn upload_pack_follows_307_but_not_302() {
    let server =
        RawServer::start(
            |request| match (request.method.as_str(), request.target.as_str()) {
                ("GET", _) => Reply::Send(advertisement_ok()),
                ("POST", "/temporary/git-upload-pack") => Reply::Send(http(
                    "307 Temporary Redirect",
                    &[("Location", "/moved/git-upload-pack")],
                    b"",
                )),
                ("POST", "/moved/git-upload-pack") => Reply::Send(http(
                    "200 OK",
                    &[("Content-Type", RESULT_CONTENT_TYPE)],
                    &request.body,
                )),
                _ => Reply::Send(http(
                    "302 Found",
                    &[("Location", "/moved/git-upload-pack")],
                    b"",
                )),
            },
        )
        .await;
    let client = default_client();
    let request = Bytes::from_static(b"0009done\n");

    let (endpoint, _) = client
        .advertisement(&server.url("/temporary"))
        .await
        .expect("advertisement");
    let stream = client
        .upload_pack(&endpoint, request.clone())
        .await
        .expect("307 is followed");
    assert_eq!(collect(stream).await.expect("echo"), request);

    let (endpoint, _) = client
        .advertisement(&server.url("/found"))
        .await
        .expect("advertisement");
    let error = client.upload_pack(&endpoint, request).await.unwrap_err();
    assert!(
        matches!(error, UpstreamError::BadRedirect { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("307"), "{error}");
}

#[tokio::test]
async fn redirect_loop_is_bounded() {
    let server = RawServer::start(|request| {
        Reply::Send(http("302 Found", &[("Location", &request.target)], b""))
    })
    .await;
    let client = client(UpstreamOptions {
        max_redirects: 3,
        ..UpstreamOptions::default()
    });
    let error = client
        .advertisement(&server.url("/loop"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::TooManyRedirects { max: 3, .. }),
        "{error}"
    );
    assert_eq!(server.seen().len(), 4, "the first request and 3 redirects");
}

#[tokio::test]
async fn redirect_away_from_info_refs_cannot_locate_the_repository() {
    let server = RawServer::start(|request| {
        if request.target.starts_with("/repo/") {
            Reply::Send(http("302 Found", &[("Location", "/elsewhere")], b""))
        } else {
            Reply::Send(advertisement_ok())
        }
    })
    .await;
    let error = default_client()
        .advertisement(&server.url("/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::BadRedirect { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("/info/refs?service=git-upload-pack"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Stalls, broken bodies, sizes

#[tokio::test]
async fn no_response_headers_times_out() {
    let server = RawServer::start(|_| Reply::SendThenStall(Vec::new())).await;
    let started = Instant::now();
    let error = short_idle()
        .advertisement(&server.url("/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::ResponseTimeout { .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn stalled_advertisement_body_times_out() {
    let server = RawServer::start(|_| {
        let mut reply = head("200 OK", &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)]);
        reply.extend_from_slice(b"Content-Length: 100\r\n\r\n001e# service");
        Reply::SendThenStall(reply)
    })
    .await;
    let error = short_idle()
        .advertisement(&server.url("/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::IdleTimeout { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("no data from server for 300ms"),
        "{error}"
    );
}

/// A server for upload-pack tests: advertises, then answers the POST with `reply`.
async fn pack_server(reply: impl Fn() -> Reply + Send + Sync + 'static) -> RawServer {
    RawServer::start(move |request| {
        if request.method == "GET" {
            Reply::Send(advertisement_ok())
        } else {
            reply()
        }
    })
    .await
}

async fn upload_pack_stream(client: &UpstreamClient, server: &RawServer) -> BodyStream {
    let (endpoint, _) = client
        .advertisement(&server.url("/repo"))
        .await
        .expect("advertisement");
    client
        .upload_pack(&endpoint, Bytes::from_static(b"0009done\n"))
        .await
        .expect("upload-pack response")
}

/// An upload-pack result: headers with `framing` (a `Content-Length` or `Transfer-Encoding` line, or none),
/// then `body`.
fn result_reply(framing: &str, body: &[u8]) -> Vec<u8> {
    let mut reply = head("200 OK", &[("Content-Type", RESULT_CONTENT_TYPE)]);
    reply.extend_from_slice(framing.as_bytes());
    reply.extend_from_slice(b"\r\n");
    reply.extend_from_slice(body);
    reply
}

/// The whole upload-pack body from a server that answers the POST with [`result_reply`]`(framing, body)` and
/// then closes the connection.
async fn closed_pack_body(
    framing: &'static str,
    body: &'static [u8],
) -> Result<Vec<u8>, UpstreamError> {
    let server = pack_server(move || Reply::Send(result_reply(framing, body))).await;
    let client = default_client();
    collect(upload_pack_stream(&client, &server).await).await
}

#[tokio::test]
async fn stalled_pack_times_out_after_the_data_so_far() {
    let server = pack_server(|| {
        Reply::SendThenStall(result_reply("Content-Length: 1000\r\n", b"0008NAK\nPACK"))
    })
    .await;
    let client = short_idle();
    let mut stream = upload_pack_stream(&client, &server).await;
    let first = stream.next_chunk().await.expect("first chunk");
    assert_eq!(first.as_deref(), Some(&b"0008NAK\nPACK"[..]));
    let error = stream.next_chunk().await.unwrap_err();
    assert!(
        matches!(error, UpstreamError::IdleTimeout { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn pack_cut_short_of_its_content_length_is_an_error() {
    let error = closed_pack_body("Content-Length: 1000\r\n", b"0008NAK\nPACK")
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Body { .. }), "{error}");
}

#[tokio::test]
async fn chunked_pack_without_its_last_chunk_is_an_error() {
    let error = closed_pack_body("Transfer-Encoding: chunked\r\n", b"c\r\n0008NAK\nPACK\r\n")
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Body { .. }), "{error}");
}

#[tokio::test]
async fn close_delimited_pack_ends_at_the_close() {
    // Without a length or chunking, a close is the end: the protocol layer must notice missing data.
    let body = closed_pack_body("", b"0008NAK\nPACK")
        .await
        .expect("close-delimited body");
    assert_eq!(body, b"0008NAK\nPACK");
}

#[tokio::test]
async fn oversize_advertisement_is_refused() {
    let limited = client(UpstreamOptions {
        max_advertisement_bytes: 1024,
        ..UpstreamOptions::default()
    });

    // Chunked, so only the arriving bytes tell.
    let chunked = RawServer::start(|_| {
        let mut reply = head(
            "200 OK",
            &[
                ("Content-Type", ADVERTISEMENT_CONTENT_TYPE),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        reply.extend_from_slice(b"\r\n");
        for _ in 0..4 {
            reply.extend_from_slice(b"400\r\n");
            reply.extend(std::iter::repeat_n(b'a', 1024));
            reply.extend_from_slice(b"\r\n");
        }
        reply.extend_from_slice(b"0\r\n\r\n");
        Reply::Send(reply)
    })
    .await;
    let error = limited
        .advertisement(&chunked.url("/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            UpstreamError::AdvertisementTooLarge { limit: 1024, .. }
        ),
        "{error}"
    );

    // A huge declared length is refused at once, without waiting for (or reserving) the body.
    let declared = RawServer::start(|_| {
        let mut reply = head("200 OK", &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)]);
        reply.extend_from_slice(b"Content-Length: 1000000000000000\r\n\r\n001e");
        Reply::SendThenStall(reply)
    })
    .await;
    let started = Instant::now();
    let error = limited
        .advertisement(&declared.url("/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::AdvertisementTooLarge { .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------------------------
// Connecting

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let repo = with_credentials(url(&format!("http://127.0.0.1:{port}/repo")), "u", "pw");
    let error = default_client().advertisement(&repo).await.unwrap_err();
    assert!(
        matches!(error, UpstreamError::ConnectionRefused { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}/repo")) && !text.contains("pw"),
        "{text}"
    );
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let error = default_client()
        .advertisement(&url(&format!("https://127.0.0.1:{port}/repo")))
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Tls { .. }), "{error}");
}

#[tokio::test]
async fn unusable_urls_and_options_are_rejected() {
    for bad in [
        "ftp://example.com/repo",
        "https://example.com/repo?ref=main",
    ] {
        let error = default_client().advertisement(&url(bad)).await.unwrap_err();
        assert!(
            matches!(error, UpstreamError::InvalidUrl { .. }),
            "{bad}: {error}"
        );
    }
    let error = UpstreamClient::new(UpstreamOptions {
        user_agent: "bad\nagent".to_owned(),
        ..UpstreamOptions::default()
    })
    .unwrap_err();
    assert!(matches!(error, UpstreamError::InvalidOption(_)), "{error}");
    let error = UpstreamClient::new(UpstreamOptions {
        idle_timeout: Duration::ZERO,
        ..UpstreamOptions::default()
    })
    .unwrap_err();
    assert!(matches!(error, UpstreamError::InvalidOption(_)), "{error}");
}

use super::*;
use crate::git::lfs::LfsOid;
use crate::upstream::UpstreamOptions;
use testkit::raw_http::{http, RawServer, Reply, Seen};

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

#[test]
fn the_default_endpoint_is_git_lfss() {
    for (repo, lfs) in [
        (
            "https://host/owner/repo",
            "https://host/owner/repo.git/info/lfs",
        ),
        (
            "https://host/owner/repo/",
            "https://host/owner/repo.git/info/lfs",
        ),
        (
            "https://host/owner/repo.git",
            "https://host/owner/repo.git/info/lfs",
        ),
        (
            "https://user:secret@host:8443/repo.git/",
            "https://host:8443/repo.git/info/lfs",
        ),
    ] {
        assert_eq!(default_lfs_url(&url(repo)).unwrap().as_str(), lfs, "{repo}");
    }
    assert!(default_lfs_url(&url("ftp://host/repo")).is_err());
    assert!(default_lfs_url(&url("https://host/repo?x=1")).is_err());
}

#[test]
fn a_configured_endpoint_replaces_the_default_but_keeps_credentials_home() {
    let client = UpstreamClient::new(UpstreamOptions {
        token: Some("tok".to_owned()),
        ..UpstreamOptions::default()
    })
    .unwrap();
    let source = url("https://git.example.com/repo");
    let endpoint = client
        .lfs_endpoint(&source, Some("https://lfs.example.com/store/"))
        .unwrap();
    assert_eq!(endpoint.url.as_str(), "https://lfs.example.com/store");
    let credentials = endpoint.credentials.as_ref().unwrap();
    assert!(credentials.may_go_to(&source));
    assert!(!credentials.may_go_to(&endpoint.url));
    assert!(!format!("{endpoint:?}").contains("tok"));
    assert!(client.lfs_endpoint(&source, Some("file:///x")).is_err());
    assert!(client.lfs_endpoint(&source, Some("not a url")).is_err());
}

fn oid(fill: u8) -> LfsOid {
    LfsOid([fill; 32])
}

/// A batch answer for objects 0x01 (on the source's origin), 0x02 (on `other`, with its own header) and 0x03
/// (on the source's origin, with its own Authorization).
fn batch_answer(request: &Seen, other: u16) -> Reply {
    let host = request.header("host").unwrap_or_default().to_owned();
    let body = serde_json::json!({"transfer": "basic", "objects": [
        {"oid": oid(1).to_string(), "size": 1, "actions": {"download": {"href": format!("http://{host}/one")}}},
        {"oid": oid(2).to_string(), "size": 1, "actions": {"download": {
            "href": format!("http://127.0.0.1:{other}/two"), "header": {"X-Signed": "s2", "Host": "elsewhere.example", "Transfer-Encoding": "chunked"}}}},
        {"oid": oid(3).to_string(), "size": 1, "actions": {"download": {
            "href": format!("http://{host}/three"), "header": {"Authorization": "Bearer own"}}}}
    ]});
    Reply::Send(http(
        "200 OK",
        &[("Content-Type", batch::CONTENT_TYPE)],
        body.to_string().as_bytes(),
    ))
}

#[tokio::test]
async fn source_credentials_go_only_to_the_source_and_hrefs_get_their_headers() {
    let other = RawServer::start(|_| Reply::Send(http("200 OK", &[], b"b"))).await;
    let other_port = other.port;
    let source = RawServer::start(move |request| match request.target.as_str() {
        "/repo.git/info/lfs/objects/batch" => batch_answer(request, other_port),
        _ => Reply::Send(http("200 OK", &[], b"a")),
    })
    .await;
    let client = UpstreamClient::new(UpstreamOptions {
        token: Some("tok".to_owned()),
        ..UpstreamOptions::default()
    })
    .unwrap();
    let endpoint = client.lfs_endpoint(&source.url("/repo"), None).unwrap();
    let pointers: Vec<Pointer> = (1..=3)
        .map(|i| Pointer {
            oid: oid(i),
            size: 1,
        })
        .collect();
    let outcomes = client.lfs_batch(&endpoint, &pointers).await.unwrap();
    for outcome in &outcomes {
        let Outcome::Download(download) = outcome else {
            panic!("{outcome:?}")
        };
        let mut body = client.lfs_download(&endpoint, download).await.unwrap();
        assert!(body.next_chunk().await.unwrap().is_some());
    }
    let basic = "Basic eC1hY2Nlc3MtdG9rZW46dG9r"; // x-access-token:tok
    let at_source = source.seen();
    let batch = &at_source[0];
    assert_eq!(batch.method, "POST");
    assert_eq!(batch.header("accept"), Some(batch::CONTENT_TYPE));
    assert_eq!(batch.header("content-type"), Some(batch::CONTENT_TYPE));
    assert_eq!(batch.header("authorization"), Some(basic));
    let one = at_source.iter().find(|s| s.target == "/one").unwrap();
    assert_eq!(
        one.header("authorization"),
        Some(basic),
        "the source's own href gets its credentials"
    );
    let three = at_source.iter().find(|s| s.target == "/three").unwrap();
    assert_eq!(
        three.header("authorization"),
        Some("Bearer own"),
        "the action's own Authorization wins"
    );
    let at_other = other.seen();
    assert_eq!(at_other.len(), 1);
    assert_eq!(at_other[0].header("x-signed"), Some("s2"));
    assert_eq!(
        at_other[0].header("authorization"),
        None,
        "no source credentials on another host"
    );
    assert_eq!(
        at_other[0].header("host"),
        Some(format!("127.0.0.1:{other_port}").as_str()),
        "the batch response cannot route the request"
    );
    assert_eq!(at_other[0].header("transfer-encoding"), None);
}

#[tokio::test]
async fn batch_failures_are_errors_of_the_whole_request() {
    let server = RawServer::start(|request| match request.target.as_str() {
        "/a.git/info/lfs/objects/batch" => Reply::Send(http("404 Not Found", &[], b"no LFS here")),
        "/b.git/info/lfs/objects/batch" => Reply::Send(http("200 OK", &[], b"{not json")),
        "/c.git/info/lfs/objects/batch" => Reply::Send(http("401 Unauthorized", &[], b"")),
        _ => Reply::Send(http("500 Internal Server Error", &[], b"boom")),
    })
    .await;
    let client = UpstreamClient::new(UpstreamOptions::default()).unwrap();
    let pointers = [Pointer {
        oid: oid(1),
        size: 1,
    }];
    let batch = |repo: &str| {
        let endpoint = client.lfs_endpoint(&server.url(repo), None).unwrap();
        let client = client.clone();
        async move {
            client
                .lfs_batch(&endpoint, &pointers)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    assert!(batch("/a").await.contains("404"), "{}", batch("/a").await);
    assert!(batch("/b").await.contains("not valid"));
    assert!(batch("/c").await.contains("authentication required"));
    let endpoint = client.lfs_endpoint(&server.url("/a"), None).unwrap();
    let download = Download {
        href: server.url("/gone"),
        headers: vec![("Bad Header".to_owned(), "x".to_owned())],
        expires_at: None,
    };
    assert!(client
        .lfs_download(&endpoint, &download)
        .await
        .unwrap_err()
        .to_string()
        .contains("header name"));
    let download = Download {
        headers: Vec::new(),
        ..download
    };
    assert!(client
        .lfs_download(&endpoint, &download)
        .await
        .unwrap_err()
        .to_string()
        .contains("500"));
}

#[tokio::test]
async fn action_headers_do_not_follow_a_redirect_to_another_origin() {
    let target = RawServer::start(|_| Reply::Send(http("200 OK", &[], b"x"))).await;
    let location = target.url("/moved").to_string();
    let first = RawServer::start(move |_| {
        Reply::Send(http("302 Found", &[("Location", location.as_str())], b""))
    })
    .await;
    let client = UpstreamClient::new(UpstreamOptions::default()).unwrap();
    let endpoint = client.lfs_endpoint(&first.url("/repo"), None).unwrap();
    let download = Download {
        href: first.url("/object"),
        headers: vec![("X-Signed".to_owned(), "secret".to_owned())],
        expires_at: None,
    };
    let mut body = client.lfs_download(&endpoint, &download).await.unwrap();
    assert!(body.next_chunk().await.unwrap().is_some());
    assert_eq!(first.seen()[0].header("x-signed"), Some("secret"));
    let moved = &target.seen()[0];
    assert_eq!(moved.target, "/moved");
    assert_eq!(
        moved.header("x-signed"),
        None,
        "the action's headers stay on its origin"
    );
}

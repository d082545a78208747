//! The smart-HTTP source client over TLS: lighttpd terminates HTTPS (HTTP/2 by ALPN) in front of the real
//! `git http-backend` server of testkit and redirects `/downgrade/...` to plain http. The client trusts
//! a test CA generated here with `openssl` through `SSL_CERT_FILE`, the same variable a user sets for a
//! private CA; it is set once, before any client exists, which is why these tests have their own binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mirror_git_to_s3::upstream::{UpstreamClient, UpstreamError, UpstreamOptions};
use testkit::process;
use url::Url;

/// The HTTPS front and what the tests need to know about it.
struct TlsFront {
    port: u16,
    git_port: u16,
    state: PathBuf,
    _process: process::ServerProcess,
}

fn openssl(args: &[&str], dir: &Path) {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    testkit::run_ok(&mut cmd);
}

/// A CA and a server certificate for IP 127.0.0.1 only (no DNS name) signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=mirror test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca, dir);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&csr, dir);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
        dir,
    );
}

fn front() -> &'static TlsFront {
    static FRONT: OnceLock<TlsFront> = OnceLock::new();
    FRONT.get_or_init(|| {
        let git_port = Url::parse(&testkit::git_server().url(""))
            .ok()
            .and_then(|url| url.port())
            .expect("git server port");
        let scratch = process::scratch_dir("mirror-test-tls-");
        let certs = scratch.join("certs");
        std::fs::create_dir_all(&certs).expect("create certs dir");
        make_certificates(&certs);
        // Set before any client reads the trust store (every test gets here first).
        std::env::set_var("SSL_CERT_FILE", certs.join("ca.pem"));
        // start_server probes its port with plain HTTP, so lighttpd serves plain HTTP there and TLS on a
        // second socket.
        let port = process::free_port();
        let server = process::start_server(
            "lighttpd TLS front",
            &scratch,
            Duration::from_secs(30),
            |plain_port, dir| {
                let config = format!(
                    r#"server.document-root = "{dir}"
server.bind = "127.0.0.1"
server.port = {plain_port}
server.modules = ("mod_openssl", "mod_redirect", "mod_proxy", "mod_accesslog")
server.errorlog = "{dir}/error.log"
accesslog.filename = "{dir}/access.log"
server.stream-response-body = 2
server.stream-request-body = 2
$SERVER["socket"] == "127.0.0.1:{port}" {{
    ssl.engine = "enable"
    ssl.pemfile = "{certs}/server.pem"
    ssl.privkey = "{certs}/server.key"
}}
url.redirect = ("^/downgrade/(.*)$" => "http://127.0.0.1:{git_port}/$1")
proxy.server = ("" => (("host" => "127.0.0.1", "port" => {git_port})))
"#,
                    dir = dir.display(),
                    certs = certs.display(),
                );
                let path = dir.join("lighttpd.conf");
                std::fs::write(&path, config).expect("write lighttpd.conf");
                let mut cmd = Command::new("lighttpd");
                cmd.arg("-D").arg("-f").arg(path);
                cmd
            },
        );
        let state = server
            .log
            .parent()
            .map(Path::to_path_buf)
            .expect("server state dir");
        TlsFront {
            port,
            git_port,
            state,
            _process: server,
        }
    })
}

fn repo_name() -> String {
    let repo = testkit::small_repo();
    repo.file_name()
        .and_then(|name| name.to_str())
        .expect("repo name")
        .to_owned()
}

fn client() -> UpstreamClient {
    UpstreamClient::new(UpstreamOptions::default()).expect("client")
}

fn pkt(line: &str) -> String {
    format!("{:04x}{line}", line.len() + 4)
}

#[tokio::test]
async fn https_with_http2_advertisement_then_pack() {
    let front = front();
    let name = repo_name();
    let repo = Url::parse(&format!("https://127.0.0.1:{}/{name}", front.port)).expect("url");
    let client = client();
    let (endpoint, body) = client.advertisement(&repo).await.expect("advertisement");
    assert!(body.starts_with(b"001e# service=git-upload-pack\n0000"));
    assert_eq!(endpoint.url(), &repo);
    let head = std::str::from_utf8(&body[38..78]).expect("oid");
    let request = format!("{}0000{}", pkt(&format!("want {head}\n")), pkt("done\n"));
    let mut stream = client
        .upload_pack(&endpoint, Bytes::from(request))
        .await
        .expect("upload-pack");
    let mut body = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.expect("chunk") {
        body.extend_from_slice(&chunk);
    }
    assert!(body.starts_with(b"0008NAK\nPACK\0\0\0\x02"));

    // lighttpd writes its access log in batches.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (log, lines) = loop {
        let log = std::fs::read_to_string(front.state.join("access.log")).unwrap_or_default();
        let lines: Vec<String> = log
            .lines()
            .filter(|line| line.contains(&format!("/{name}/")))
            .map(String::from)
            .collect();
        if lines.len() >= 2 || Instant::now() > deadline {
            break (log, lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines.iter().all(|line| line.contains("HTTP/2.0\"")),
        "not HTTP/2: {lines:?}"
    );
}

#[tokio::test]
async fn https_redirect_to_plain_http_is_refused() {
    let front = front();
    let name = repo_name();
    let repo = Url::parse(&format!(
        "https://127.0.0.1:{}/downgrade/{name}",
        front.port
    ))
    .expect("url");
    let error = client().advertisement(&repo).await.unwrap_err();
    assert!(
        matches!(error, UpstreamError::InsecureRedirect { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&format!(
            "http://127.0.0.1:{}/{name}/info/refs",
            front.git_port
        )),
        "{error}"
    );
}

#[tokio::test]
async fn certificate_for_another_name_is_a_tls_error() {
    let front = front();
    let repo =
        Url::parse(&format!("https://localhost:{}/{}", front.port, repo_name())).expect("url");
    let error = client().advertisement(&repo).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Tls { .. }), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

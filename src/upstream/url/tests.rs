use super::*;
use crate::upstream::UpstreamError;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

#[test]
fn redact_hides_user_and_password() {
    assert_eq!(
        redact(&url("https://user:secret@example.com/a/b.git#frag")),
        "https://***@example.com/a/b.git"
    );
    assert_eq!(
        redact(&url("https://ghp_token@example.com/a")),
        "https://***@example.com/a"
    );
    assert_eq!(
        redact(&url("http://example.com:8080/a?x=1")),
        "http://example.com:8080/a?x=***"
    );
}

#[test]
fn redact_hides_query_values_but_git_service() {
    assert_eq!(
        redact(&url(
            "https://gitlab.example/r.git?private_token=glpat-123&access_token=abc&x#frag"
        )),
        "https://gitlab.example/r.git?private_token=***&access_token=***&***"
    );
    assert_eq!(
        redact(&url(
            "https://u:p@h/r/info/refs?service=git-upload-pack&token=t"
        )),
        "https://***@h/r/info/refs?service=git-upload-pack&token=***"
    );
    assert_eq!(redact(&url("https://h/r?")), "https://h/r?");
}

#[test]
fn redact_str_hides_query_values_and_fragments_even_in_broken_urls() {
    for (text, shown) in [
        (
            "https://h/r?private_token=glpat-1#frag",
            "https://h/r?private_token=***",
        ),
        (
            "https://exa mple.com/r?access_token=abc&service=git-upload-pack#s3cret",
            "https://exa mple.com/r?access_token=***&service=git-upload-pack",
        ),
        (
            "ftp://u:pw@h/r?private_token=x",
            "ftp://***@h/r?private_token=***",
        ),
        ("host/r#secret", "host/r"),
    ] {
        assert_eq!(redact_str(text), shown, "{text}");
    }
}

#[test]
fn an_unusable_location_is_quoted_redacted() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_static("https://[bad/?private_token=glpat-9"),
    );
    let error = redirect_target(&url("https://h/r"), &headers).unwrap_err();
    let message = error.to_string();
    assert!(!message.contains("glpat-9"), "{message}");
    assert!(message.contains("private_token=***"), "{message}");
}

#[test]
fn redact_str_hides_user_info_even_in_broken_urls() {
    assert_eq!(
        redact_str("https://u:pw@example.com/r"),
        "https://***@example.com/r"
    );
    assert_eq!(
        redact_str("https://u:p w@exa mple.com/r@x"),
        "https://***@exa mple.com/r@x"
    );
    assert_eq!(redact_str("tok:en@host:org/repo"), "***@host:org/repo");
    assert_eq!(redact_str("not a url"), "not a url");
    assert_eq!(redact_str("https://h\u{e9}@x/y"), "https://***@x/y");
}

#[test]
fn repo_base_normalizes_and_rejects() {
    let base = repo_base(&url("https://u:p@example.com/org/repo.git///#x")).unwrap();
    assert_eq!(base.as_str(), "https://example.com/org/repo.git");
    let base = repo_base(&url("http://example.com/org/repo/")).unwrap();
    assert_eq!(base.as_str(), "http://example.com/org/repo");
    assert_eq!(
        repo_base(&url("https://example.com/")).unwrap().as_str(),
        "https://example.com/"
    );
    for bad in [
        "ftp://example.com/repo",
        "file:///srv/repo.git",
        "https://example.com/repo?x=1",
    ] {
        let error = repo_base(&url(bad)).unwrap_err();
        assert!(
            matches!(error, UpstreamError::InvalidUrl { .. }),
            "{bad}: {error}"
        );
    }
    let error = repo_base(&url("ssh://me:pw@example.com/repo")).unwrap_err();
    assert!(!error.to_string().contains("pw"), "{error}");
}

fn basic(header: &HeaderValue) -> String {
    let text = header.to_str().unwrap();
    let encoded = text.strip_prefix("Basic ").unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn credentials_from_url_and_token() {
    let none = credentials_for(&url("https://example.com/r"), None);
    assert!(none.is_none());
    let token = credentials_for(&url("https://example.com/r"), Some("tok")).unwrap();
    assert_eq!(basic(&token.header), "x-access-token:tok");
    assert!(token.header.is_sensitive());
    let user_token = credentials_for(&url("https://bob@example.com/r"), Some("tok")).unwrap();
    assert_eq!(basic(&user_token.header), "bob:tok");
    let url_password =
        credentials_for(&url("https://bob:p%40ss%zz@example.com/r"), Some("tok")).unwrap();
    assert_eq!(basic(&url_password.header), "bob:p@ss%zz");
    let user_only = credentials_for(&url("https://ghp_abc@example.com/r"), None).unwrap();
    assert_eq!(basic(&user_only.header), "ghp_abc:");
    assert_eq!(user_only.origin, url("https://example.com:443/x").origin());
}

fn location(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, HeaderValue::from_str(value).unwrap());
    headers
}

#[test]
fn redirect_targets() {
    let here = url("https://example.com/a/info/refs?service=git-upload-pack");
    assert_eq!(
        redirect_target(&here, &location("/b/info/refs?service=git-upload-pack"))
            .unwrap()
            .as_str(),
        "https://example.com/b/info/refs?service=git-upload-pack"
    );
    assert_eq!(
        redirect_target(&here, &location("https://u:p@other.example/c#f"))
            .unwrap()
            .as_str(),
        "https://other.example/c"
    );
    let error = redirect_target(&here, &location("http://u:p@example.com/a")).unwrap_err();
    assert!(
        matches!(error, UpstreamError::InsecureRedirect { .. }),
        "{error}"
    );
    assert!(!error.to_string().contains(":p@"), "{error}");
    for bad in ["ftp://example.com/x", "http://[::1"] {
        let error = redirect_target(&url("http://example.com/"), &location(bad)).unwrap_err();
        assert!(
            matches!(error, UpstreamError::BadRedirect { .. }),
            "{error}"
        );
    }
    let error = redirect_target(&here, &HeaderMap::new()).unwrap_err();
    assert!(
        matches!(error, UpstreamError::BadRedirect { .. }),
        "{error}"
    );
}

#[test]
fn base_after_redirect_follows_gits_rule() {
    let moved = url("https://example.com/new/repo.git/info/refs?service=git-upload-pack");
    assert_eq!(
        base_after_redirect(&moved, "x").unwrap().as_str(),
        "https://example.com/new/repo.git"
    );
    for bad in [
        "https://example.com/login",
        "https://example.com/new/info/refs",
        "https://example.com/new/info/refs?service=git-receive-pack",
    ] {
        assert!(base_after_redirect(&url(bad), "x").is_err(), "{bad}");
    }
}

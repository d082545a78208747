use super::*;
use crate::upstream::url::credentials_for;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

#[test]
fn debug_output_hides_secrets() {
    let options = UpstreamOptions {
        token: Some("supersecret".to_owned()),
        ..UpstreamOptions::default()
    };
    assert!(!format!("{options:?}").contains("supersecret"));
    let endpoint = RepoEndpoint {
        base: url("https://example.com/r"),
        credentials: credentials_for(&url("https://example.com/r"), Some("supersecret")),
    };
    let shown = format!("{endpoint:?}");
    assert!(!shown.contains("supersecret") && !shown.contains("c3VwZXJzZWNyZXQ"));
}

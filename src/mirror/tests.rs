use super::*;

#[test]
fn mirror_repos_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let options = MirrorOptions::default();
    let mappings = [Mapping {
        source: "https://example.com/r.git".into(),
        target: "s3://b/p".into(),
    }];
    assert_send(&mirror_repos(&mappings, &options));
}

#[test]
fn source_urls_must_be_http() {
    assert!(parse_source_url("https://example.com/a/b.git").is_ok());
    for bad in ["ftp://x/y", "not a url", "file:///etc", "https://"] {
        assert!(parse_source_url(bad).is_err(), "{bad}");
    }
}

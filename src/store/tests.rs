use super::*;

#[test]
fn keys_are_validated() {
    for good in [
        "a",
        "info/refs",
        "objects/pack/pack-1.idx",
        ".keep",
        "refs/.keep",
        "a..b",
        "..a/b..",
        "x y",
    ] {
        assert!(validate_key(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "/",
        "/etc/passwd",
        "a/",
        "a//b",
        "./a",
        "a/.",
        "..",
        "../x",
        "a/../../b",
        "a\\b",
        "a\0b",
        "a/.mirror-tmp-1",
    ] {
        assert!(
            matches!(validate_key(bad), Err(StoreError::InvalidKey { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn prefixes_are_validated() {
    for good in ["", "refs/", "refs/he", "a", "objects/pack/pack-", "refs/."] {
        assert!(validate_prefix(good).is_ok(), "{good}");
    }
    for bad in ["/", "/etc/", "../", "a/../", "a//", "a\0", "a\\b"] {
        assert!(validate_prefix(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn open_picks_the_backend() {
    let opts = S3Options::default();
    let dir = tempfile::tempdir().unwrap();
    let local = open(dir.path().to_str().unwrap(), &opts).await.unwrap();
    assert_eq!(local.describe(), dir.path().display().to_string());
    assert!(matches!(
        open("", &opts).await,
        Err(StoreError::InvalidTarget { .. })
    ));
    assert!(matches!(
        open("s3://", &opts).await,
        Err(StoreError::InvalidTarget { .. })
    ));
    assert!(matches!(
        open("s3:///prefix", &opts).await,
        Err(StoreError::InvalidTarget { .. })
    ));
}

#[test]
fn replacing_matches_the_object_read_or_its_absence() {
    assert_eq!(Precondition::replacing(None), Precondition::IfNoneMatch);
    let read = Object {
        body: Bytes::from_static(b"x"),
        etag: "\"e1\"".to_owned(),
    };
    assert_eq!(
        Precondition::replacing(Some(&read)),
        Precondition::IfMatch("\"e1\"".to_owned())
    );
}

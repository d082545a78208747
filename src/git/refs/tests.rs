use super::*;

#[test]
fn names_git_accepts_are_valid() {
    for name in [
        "refs/heads/main",
        "refs/tags/v1.0",
        "refs/pull/12/head",
        "refs/heads/feature/a-b_c",
        "refs/heads/caf\u{e9}",
        "refs/heads/a.b",
        "refs/heads/@",
        "refs/heads/x@y",
    ] {
        assert!(is_valid_name(name.as_bytes()), "{name}");
    }
}

#[test]
fn names_check_ref_format_refuses_are_invalid() {
    let refused: &[&[u8]] = &[
        b"HEAD",
        b"heads/main",
        b"refs/",
        b"refs/heads/",
        b"refs//heads/main",
        b"refs/heads/.hidden",
        b"refs/heads/a/.b",
        b"refs/heads/main.lock",
        b"refs/heads/a..b",
        b"refs/heads/a.",
        b"refs/heads/a@{1}",
        b"refs/heads/a b",
        b"refs/heads/a~1",
        b"refs/heads/a^",
        b"refs/heads/a:b",
        b"refs/heads/a?",
        b"refs/heads/a*",
        b"refs/heads/a[b",
        b"refs/heads/a\\b",
        b"refs/heads/a\x7fb",
        b"refs/heads/\x1b[31m",
        b"refs/heads/\xff",
    ];
    for name in refused {
        assert!(!is_valid_name(name), "{}", String::from_utf8_lossy(name));
    }
}

/// Every name the real `git check-ref-format` refuses is refused here too, and the other way round.
#[test]
fn agrees_with_git_check_ref_format() {
    let names = [
        "refs/heads/main",
        "refs/heads/a..b",
        "refs/heads/a.lock",
        "refs/heads/.a",
        "refs/heads/a@{b",
        "refs/heads/a b",
        "refs/heads//a",
        "refs/heads/a/",
        "refs/heads/a.",
        "refs/heads/a\\b",
        "refs/tags/v1^{}",
        "refs/heads/a:b",
        "refs/heads/a*",
        "refs/heads/x@y",
        "refs/heads/@",
    ];
    for name in names {
        let git = testkit::git::git_command(&std::env::temp_dir())
            .args(["check-ref-format", name])
            .status()
            .expect("git runs");
        assert_eq!(is_valid_name(name.as_bytes()), git.success(), "{name}");
    }
}

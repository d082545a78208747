use super::*;

const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

fn pointer_text(oid: &str, size: &str) -> Vec<u8> {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
        .into_bytes()
}

fn oid() -> LfsOid {
    LfsOid::from_hex(OID.as_bytes()).unwrap()
}

#[test]
fn parses_a_pointer_as_git_lfs_writes_it() {
    assert_eq!(
        parse_pointer(&pointer_text(OID, "12345")),
        Some(Pointer {
            oid: oid(),
            size: 12345
        })
    );
    assert_eq!(oid().to_string(), OID);
    assert_eq!(
        oid().store_key(),
        format!("lfs/objects/4d/7a/{OID}"),
        "the layout git-lfs-http-mirror serves"
    );
}

#[test]
fn extension_keys_are_allowed_and_size_zero_is_a_size() {
    let text = format!(
        "version https://git-lfs.github.com/spec/v1\next-0-foo sha256:{OID}\noid sha256:{OID}\nsize 0\n"
    );
    assert_eq!(
        parse_pointer(text.as_bytes()),
        Some(Pointer {
            oid: oid(),
            size: 0
        })
    );
}

#[test]
fn malformed_pointers_are_not_pointers() {
    let upper = OID.to_uppercase();
    let long_key = format!("{}\n", "x".repeat(1100));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("spec line only", SPEC_LINE.to_vec()),
        ("no final newline", pointer_text(OID, "1")[..pointer_text(OID, "1").len() - 1].to_vec()),
        ("upper-case oid", pointer_text(&upper, "1")),
        ("short oid", pointer_text(&OID[1..], "1")),
        ("non-hex oid", pointer_text(&OID.replace('a', "g"), "1")),
        ("other hash", replaced(&pointer_text(OID, "1"), "sha256:", "sha512:")),
        ("negative size", pointer_text(OID, "-1")),
        ("signed size", pointer_text(OID, "+1")),
        ("leading zero", pointer_text(OID, "01")),
        ("overflowing size", pointer_text(OID, "18446744073709551616")),
        ("empty size", pointer_text(OID, "")),
        ("size with space", pointer_text(OID, "1 2")),
        ("CRLF", pointer_text(OID, "1").iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect()),
        ("old spec URL", format!("version https://hawser.github.com/spec/v1\noid sha256:{OID}\nsize 1\n").into_bytes()),
        ("missing size", format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\n").into_bytes()),
        ("missing oid", b"version https://git-lfs.github.com/spec/v1\nsize 1\n".to_vec()),
        ("oid twice", format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\noid sha256:{OID}\nsize 1\n").into_bytes()),
        ("version twice", [SPEC_LINE, &pointer_text(OID, "1")].concat()),
        ("empty line", [pointer_text(OID, "1"), b"\n".to_vec()].concat()),
        ("line without value", [pointer_text(OID, "1"), b"ext\n".to_vec()].concat()),
        ("bad key", [pointer_text(OID, "1"), b"Bad-Key x\n".to_vec()].concat()),
        ("too long", [pointer_text(OID, "1"), b"z ".to_vec(), long_key.into_bytes()].concat()),
        ("binary", vec![0xff; 200]),
    ];
    for (what, blob) in cases {
        assert_eq!(parse_pointer(&blob), None, "{what}");
    }
}

fn replaced(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(text.to_vec())
        .unwrap()
        .replace(from, to)
        .into_bytes()
}

#[test]
fn the_scanner_finds_a_pointer_fed_in_pieces_and_keeps_nothing_else() {
    let text = pointer_text(OID, "7");
    let mut scanner = PointerScanner::default();
    for piece in [1, 2, 5, 13, 64, 1000] {
        scanner.start(ObjectKind::Blob, text.len() as u64);
        for chunk in text.chunks(piece) {
            scanner.push(chunk);
        }
        assert_eq!(
            scanner.finish(),
            Some(Pointer {
                oid: oid(),
                size: 7
            }),
            "pieces of {piece}"
        );
    }
    // Not a blob, declared too big, or growing past the limit whatever was declared.
    scanner.start(ObjectKind::Tree, text.len() as u64);
    scanner.push(&text);
    assert_eq!(scanner.finish(), None);
    scanner.start(ObjectKind::Blob, MAX_POINTER_SIZE);
    scanner.push(&text);
    assert_eq!(scanner.finish(), None);
    scanner.start(ObjectKind::Blob, 10);
    scanner.push(&text);
    scanner.push(&vec![b'x'; 1024]);
    assert_eq!(scanner.finish(), None);
    assert!(
        scanner.held.capacity() < 2048,
        "at most a pointer's worth is held"
    );
    // A blob that stops agreeing with the spec line is dropped at once.
    scanner.start(ObjectKind::Blob, 500);
    scanner.push(b"version https://example.com");
    assert!(!scanner.live && scanner.held.len() <= SPEC_LINE.len());
    assert_eq!(scanner.finish(), None);
    // finish without start, and twice.
    assert_eq!(scanner.finish(), None);
}

#[test]
fn the_scanner_holds_no_byte_of_an_object_that_cannot_be_a_pointer() {
    // A scan handed to another thread lives on while it waits there: it must not keep a copy of each small blob.
    let text = pointer_text(OID, "7");
    let mut diverging = text.clone();
    diverging[20] = b'X';
    let cases: [&[u8]; 4] = [
        b"hello, world\n",
        &diverging,
        &text[..SPEC_LINE.len() - 1],
        &[0; 1023],
    ];
    for (case, bytes) in cases.iter().enumerate() {
        for piece in [1, 7, SPEC_LINE.len(), 1024] {
            let mut scanner = PointerScanner::default();
            scanner.start(ObjectKind::Blob, bytes.len() as u64);
            for chunk in bytes.chunks(piece) {
                scanner.push(chunk);
            }
            let agrees = bytes.len() <= SPEC_LINE.len() && SPEC_LINE.starts_with(bytes);
            match agrees {
                // Still a pointer's beginning: held, and counted.
                true => assert_eq!(scanner.held_bytes(), scanner.held.capacity() as u64),
                false => assert_eq!(scanner.held_bytes(), 0, "case {case}, pieces of {piece}"),
            }
            assert_eq!(scanner.finish(), None);
        }
    }
    // A pointer grown past the limit is let go whole.
    let mut scanner = PointerScanner::default();
    scanner.start(ObjectKind::Blob, 10);
    scanner.push(&text);
    assert!(scanner.held_bytes() >= text.len() as u64);
    scanner.push(&[b'x'; 1024]);
    assert_eq!(scanner.held_bytes(), 0);
}

#[test]
fn the_set_keeps_each_pointer_once_sorted() {
    let other = LfsOid([0; 32]);
    let mut set = PointerSet::new();
    assert!(set.is_empty());
    assert!(set.insert(Pointer {
        oid: oid(),
        size: 1
    }));
    assert!(!set.insert(Pointer {
        oid: oid(),
        size: 1
    }));
    set.observe(ObjectKind::Blob, &pointer_text(&other.to_string(), "3"));
    set.observe(ObjectKind::Commit, &pointer_text(OID, "9"));
    set.observe(ObjectKind::Blob, b"not a pointer");
    let mut more = PointerSet::new();
    more.insert(Pointer {
        oid: oid(),
        size: 1,
    });
    set.extend(more);
    assert_eq!(
        set.sorted(),
        vec![
            Pointer {
                oid: other,
                size: 3
            },
            Pointer {
                oid: oid(),
                size: 1
            }
        ]
    );
    assert_eq!(set.len(), 2);
    assert!(set.approx_bytes() > 0);
}

use super::*;
use std::collections::BTreeSet;
use testkit::fixtures::build_rich;
use testkit::git::{git, git_with_input};

/// The links of `content` read in chunks of `chunk` bytes.
fn links_of(kind: ObjectKind, content: &[u8], chunk: usize) -> Result<Vec<ObjectId>, LinkError> {
    let mut parser = LinkParser::new(kind);
    let mut found = Vec::new();
    for piece in content.chunks(chunk.max(1)) {
        parser.update(piece, &mut |id| found.push(id))?;
    }
    parser.finish(&mut |id| found.push(id))?;
    Ok(found)
}

fn id(hex: &str) -> ObjectId {
    hex.parse().unwrap()
}

/// What git says an object links to: `%T %P` of a commit, the non-gitlink entries of a tree, a tag's target.
fn links_by_git(repo: &std::path::Path, kind: &str, oid: &str) -> BTreeSet<ObjectId> {
    let text = match kind {
        "commit" => git(["show", "-s", "--format=%T %P", oid], repo),
        "tree" => git(["ls-tree", oid], repo)
            .lines()
            .filter(|l| !l.starts_with("160000 "))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_owned() + " ")
            .collect(),
        "tag" => git(["cat-file", "tag", oid], repo)
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("object ")
            .to_owned(),
        _ => String::new(),
    };
    text.split_whitespace().map(id).collect()
}

#[test]
fn every_object_of_a_real_repository_links_to_what_git_says() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("rich.git");
    build_rich(&repo);
    let all = git(
        [
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objecttype) %(objectname)",
        ],
        &repo,
    );
    let mut kinds = BTreeSet::new();
    let mut gitlinks = 0;
    for line in all.lines() {
        let (kind, oid) = line.split_once(' ').unwrap();
        let content = git_with_input(["cat-file", kind, oid], &repo, b"");
        let object_kind = match kind {
            "commit" => ObjectKind::Commit,
            "tree" => ObjectKind::Tree,
            "tag" => ObjectKind::Tag,
            _ => ObjectKind::Blob,
        };
        let expected = links_by_git(&repo, kind, oid);
        for chunk in [1, 7, 64, usize::MAX] {
            let found: BTreeSet<ObjectId> = links_of(object_kind, &content, chunk)
                .unwrap_or_else(|e| panic!("{kind} {oid}: {e}"))
                .into_iter()
                .collect();
            assert_eq!(found, expected, "{kind} {oid}, chunks of {chunk}");
        }
        kinds.insert(kind.to_owned());
        if kind == "tree" && git(["ls-tree", oid], &repo).contains("160000 commit") {
            gitlinks += 1;
        }
    }
    assert_eq!(kinds.len(), 4, "every kind covered: {kinds:?}");
    assert!(gitlinks > 0, "a tree with a submodule entry is covered");
}

#[test]
fn a_gitlink_is_not_a_link() {
    let sub = [7u8; 20];
    let file = [9u8; 20];
    let mut tree = b"160000 vendor\0".to_vec();
    tree.extend_from_slice(&sub);
    tree.extend_from_slice(b"100644 file\0");
    tree.extend_from_slice(&file);
    assert_eq!(
        links_of(ObjectKind::Tree, &tree, 3).unwrap(),
        vec![ObjectId(file)]
    );
}

#[test]
fn malformed_objects_are_errors() {
    let tree_line = format!("tree {}\n", "a".repeat(40));
    let cases: &[(ObjectKind, Vec<u8>, LinkError)] = &[
        (
            ObjectKind::Commit,
            b"".to_vec(),
            LinkError::MissingHeader("tree"),
        ),
        (
            ObjectKind::Commit,
            b"author x\ntree 0\n".to_vec(),
            LinkError::MissingHeader("tree"),
        ),
        (
            ObjectKind::Commit,
            b"tree 12\n".to_vec(),
            LinkError::BadHeaderId("tree"),
        ),
        (
            ObjectKind::Commit,
            format!("{tree_line}parent {}\n", "z".repeat(40)).into_bytes(),
            LinkError::BadHeaderId("parent"),
        ),
        (
            ObjectKind::Commit,
            format!("{tree_line}parent {}0\n", "b".repeat(40)).into_bytes(),
            LinkError::BadHeaderId("parent"),
        ),
        (
            ObjectKind::Tag,
            b"type commit\n".to_vec(),
            LinkError::MissingHeader("object"),
        ),
        (
            ObjectKind::Tree,
            b"100644 name\0short".to_vec(),
            LinkError::TruncatedEntry,
        ),
        (
            ObjectKind::Tree,
            b"100644 name".to_vec(),
            LinkError::TruncatedEntry,
        ),
        (
            ObjectKind::Tree,
            b"10064".to_vec(),
            LinkError::TruncatedEntry,
        ),
        (ObjectKind::Tree, b" name\0".to_vec(), LinkError::BadMode),
        (
            ObjectKind::Tree,
            b"10x644 name\0".to_vec(),
            LinkError::BadMode,
        ),
        (
            ObjectKind::Tree,
            b"100644100644 n\0".to_vec(),
            LinkError::BadMode,
        ),
    ];
    for (kind, content, expected) in cases {
        for chunk in [1, usize::MAX] {
            assert_eq!(
                links_of(*kind, content, chunk).as_ref(),
                Err(expected),
                "{kind:?} {:?}",
                String::from_utf8_lossy(content)
            );
        }
    }
}

#[test]
fn a_commit_header_ends_at_its_first_other_line() {
    let content = format!(
        "tree {}\nparent {}\nauthor A <a@b> 1 +0000\nparent {}\n\nmessage\n",
        "1".repeat(40),
        "2".repeat(40),
        "3".repeat(40)
    );
    assert_eq!(
        links_of(ObjectKind::Commit, content.as_bytes(), 5).unwrap(),
        vec![id(&"1".repeat(40)), id(&"2".repeat(40))]
    );
    // Without a final newline the last line still counts.
    let bare = format!("tree {}", "1".repeat(40));
    assert_eq!(
        links_of(ObjectKind::Commit, bare.as_bytes(), 4).unwrap(),
        vec![id(&"1".repeat(40))]
    );
    assert_eq!(links_of(ObjectKind::Blob, b"tree x", 1).unwrap(), vec![]);
    assert_eq!(links_of(ObjectKind::Tree, b"", 1).unwrap(), vec![]);
}

/// The file a tree's parser watched for, reading `content` in chunks of `chunk` bytes.
fn watched_in(content: &[u8], name: &'static [u8], chunk: usize) -> Option<ObjectId> {
    let mut parser = LinkParser::new(ObjectKind::Tree).watching(name);
    for piece in content.chunks(chunk) {
        parser.update(piece, &mut |_| {}).unwrap();
    }
    parser.finish(&mut |_| {}).unwrap();
    parser.watched()
}

#[test]
fn a_watched_file_is_found_by_its_whole_name_and_only_as_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    git(["init", "-q", "--bare", "."], dir.path());
    let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
    // Real trees, written by git from `ls-tree` lines (the objects they name need not exist).
    let tree = |lines: &[String]| {
        let listing = lines.join("\n") + "\n";
        let oid = git_with_input(["mktree", "--missing"], dir.path(), listing.as_bytes());
        let oid = String::from_utf8(oid).unwrap();
        git_with_input(["cat-file", "tree", oid.trim()], dir.path(), b"")
    };
    let neighbours = [
        format!("100644 blob {a}\t.lfsconfi"),
        format!("100644 blob {a}\t.lfsconfig.bak"),
        format!("100644 blob {a}\t.lfsconfigx"),
        format!("040000 tree {a}\tdir"),
        format!("100644 blob {a}\tz"),
    ];
    let with = |line: String| tree(&[neighbours.to_vec(), vec![line]].concat());
    let cases = [
        (with(format!("100644 blob {b}\t.lfsconfig")), Some(id(&b))),
        (with(format!("100755 blob {c}\t.lfsconfig")), Some(id(&c))),
        (with(format!("120000 blob {b}\t.lfsconfig")), None),
        (with(format!("040000 tree {b}\t.lfsconfig")), None),
        (with(format!("160000 commit {b}\t.lfsconfig")), None),
        (tree(&neighbours), None),
    ];
    for (content, expected) in &cases {
        for chunk in 1..=content.len() {
            assert_eq!(
                watched_in(content, b".lfsconfig", chunk),
                *expected,
                "chunks of {chunk}"
            );
        }
        // Unwatched, a tree's parser keeps nothing; a commit's never watches.
        let mut plain = LinkParser::new(ObjectKind::Tree);
        plain.update(content, &mut |_| {}).unwrap();
        assert_eq!(plain.watched(), None);
    }
    let commit = format!("tree {b}\n\n.lfsconfig\n");
    let mut parser = LinkParser::new(ObjectKind::Commit).watching(b".lfsconfig");
    parser.update(commit.as_bytes(), &mut |_| {}).unwrap();
    assert_eq!(parser.watched(), None);
}

#[test]
fn a_watched_name_in_a_malformed_tree_is_an_error_before_it_is_found() {
    // The id is cut short: the entry is incomplete, so nothing was found and finishing is an error.
    let mut truncated = b"100644 .lfsconfig\0".to_vec();
    truncated.extend_from_slice(&[7; 19]);
    let mut parser = LinkParser::new(ObjectKind::Tree).watching(b".lfsconfig");
    parser.update(&truncated, &mut |_| {}).unwrap();
    assert_eq!(parser.watched(), None);
    assert_eq!(parser.finish(&mut |_| {}), Err(LinkError::TruncatedEntry));
    // A mode of seven digits is not a regular file's, even with the value of one.
    let mut padded = b"0100644 .lfsconfig\0".to_vec();
    padded.extend_from_slice(&[7; 20]);
    assert_eq!(watched_in(&padded, b".lfsconfig", 3), None);
    // A long name is matched across chunks as well, and one byte more or less is another name.
    let long: &'static [u8] = Box::leak(vec![b'x'; 300].into_boxed_slice());
    let entry = |name: &[u8], id: u8| [b"100644 ".as_slice(), name, b"\0", &[id; 20]].concat();
    let tree = [
        entry(&long[1..], 1),
        entry(long, 2),
        entry(&[long, b"x"].concat(), 3),
    ]
    .concat();
    assert_eq!(watched_in(&tree, long, 64), Some(ObjectId([2; 20])));
}

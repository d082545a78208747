use super::*;

use crate::git::scan::tests::tree_of;

fn whole(entry: u32, kind: ObjectKind, content: &[u8]) -> Finished {
    Finished {
        entry,
        offset: 100 + u64::from(entry),
        kind,
        content: Content::Whole(Arc::new(content.to_vec())),
    }
}

#[test]
fn the_inline_sink_hashes_and_scans_at_once() {
    let mut sink = InlineSink::new(Scanner::collecting_links(1 << 20));
    let tree = tree_of(&[[1; 20], [2; 20]]);
    sink.submit(whole(0, ObjectKind::Blob, b"hello")).unwrap();
    sink.submit(whole(1, ObjectKind::Tree, &tree)).unwrap();
    let mut done = Vec::new();
    sink.take_done(&mut done).unwrap();
    assert_eq!(
        done,
        vec![
            Hashed {
                entry: 0,
                oid: hash_object(ObjectKind::Blob, b"hello")
            },
            Hashed {
                entry: 1,
                oid: hash_object(ObjectKind::Tree, &tree)
            },
        ]
    );
    sink.flush(&mut done).unwrap();
    assert_eq!(done.len(), 2);
    let scanner = Box::new(sink).finish().unwrap();
    assert_eq!(scanner.link_count(), 2);
}

#[test]
fn an_object_hashed_here_gives_the_same_id_and_links() {
    let tree = tree_of(&[[3; 20], [4; 20], [3; 20]]);
    let plan = Scanner::collecting_links(1 << 20).plan();
    let hashed = whole(7, ObjectKind::Tree, &tree).hash_here(&plan);
    assert_eq!(hashed.bytes(), 0);
    let mut scanner = Scanner::collecting_links(1 << 20);
    let result = hashed.process(&mut scanner).unwrap();
    assert_eq!(
        result,
        Hashed {
            entry: 7,
            oid: hash_object(ObjectKind::Tree, &tree)
        }
    );
    assert_eq!(scanner.link_count(), 2);
    // A blob nothing scans carries no scan.
    let blob = whole(8, ObjectKind::Blob, b"x").hash_here(&plan);
    assert!(matches!(blob.content, Content::Hashed(_, None)));
}

#[test]
fn a_malformed_object_fails_with_its_offset_and_id_and_the_error_stays() {
    let mut sink = InlineSink::new(Scanner::collecting_links(1 << 20));
    let err = sink
        .submit(whole(3, ObjectKind::Commit, b"author x\n"))
        .unwrap_err();
    let oid = hash_object(ObjectKind::Commit, b"author x\n");
    assert_eq!(
        err.to_string(),
        format!(
            "pack entry at offset 103: commit {oid} is malformed: it does not start with a \"tree <id>\" line"
        )
    );
    assert_eq!(
        sink.submit(whole(4, ObjectKind::Blob, b"fine")),
        Err(err.clone())
    );
    assert_eq!(sink.flush(&mut Vec::new()), Err(err.clone()));
    assert_eq!(Box::new(sink).finish().unwrap_err(), err);
}

#[test]
fn too_many_links_fail_in_the_sink() {
    let mut sink = InlineSink::new(Scanner::collecting_links(crate::git::scan::BYTES_PER_LINK));
    let tree = tree_of(&[[1; 20], [2; 20]]);
    let err = sink.submit(whole(0, ObjectKind::Tree, &tree)).unwrap_err();
    assert!(matches!(
        err,
        HandOverError::Scan {
            offset: 100,
            problem: ScanError::TooManyLinks { .. }
        }
    ));
}

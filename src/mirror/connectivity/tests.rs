use super::*;
use crate::git::idx::{write_idx_v2_with_limit, IdxEntry};
use crate::git::layout::{Head, Ref};
use crate::git::pack::entry::Entry;
use crate::store::{LocalStore, Precondition};
use bytes::Bytes;

fn id(byte: u8) -> ObjectId {
    ObjectId([byte; 20])
}

fn index_of(objects: &[ObjectId]) -> Vec<u8> {
    let mut entries: Vec<IdxEntry> = objects
        .iter()
        .map(|oid| IdxEntry {
            oid: *oid,
            crc32: 0,
            offset: 12,
        })
        .collect();
    write_idx_v2_with_limit(&mut entries, &ObjectId::ZERO, u64::MAX).unwrap()
}

fn desired(refs: &[(&str, ObjectId)]) -> Desired {
    let refs: Vec<Ref> = refs
        .iter()
        .map(|(name, oid)| Ref {
            name: (*name).to_owned(),
            oid: *oid,
            peeled: None,
        })
        .collect();
    Desired {
        info_refs: layout::render_info_refs(&refs),
        head: Head::Symbolic("refs/heads/main".into()),
        head_file: Vec::new(),
        refs,
    }
}

/// A directory store listing one pack (named `id(0xee)`) that holds `objects`.
async fn store_with_pack(dir: &std::path::Path, objects: &[ObjectId]) -> LocalStore {
    let store = LocalStore::new(dir);
    store
        .put(
            &layout::idx_key(&id(0xee)),
            Bytes::from(index_of(objects)),
            Precondition::None,
        )
        .await
        .unwrap();
    store
}

fn scanner_linking(links: &[ObjectId]) -> Scanner {
    let mut scanner = Scanner::collecting_links(1 << 20);
    let mut tree = Vec::new();
    for (i, l) in links.iter().enumerate() {
        tree.extend_from_slice(format!("100644 f{i}\0").as_bytes());
        tree.extend_from_slice(&l.0);
    }
    scanner
        .visit(crate::git::oid::ObjectKind::Tree, ObjectId::ZERO, &tree)
        .unwrap();
    scanner
}

#[tokio::test]
async fn links_and_tips_found_in_the_new_pack_or_a_listed_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_pack(dir.path(), &[id(1), id(2), id(0x80)]).await;
    let new_index = index_of(&[id(3), id(4)]);
    let scanner = scanner_linking(&[id(1), id(0x80), id(4)]);
    let received = Received {
        index: Some(&new_index),
        scanner: &scanner,
        objects: 2,
    };
    let want = desired(&[("refs/heads/main", id(3)), ("refs/tags/old", id(2))]);
    check(&store, &want, &[], &[id(0xee)], &received)
        .await
        .unwrap();
    // The same on a run that must be complete on its own is refused, naming the ref first.
    let err = check(&store, &want, &[], &[], &received).await.unwrap_err();
    let MirrorError::Incomplete(missing) = &err else {
        panic!("{err}");
    };
    assert_eq!(missing.ref_name.as_deref(), Some("refs/tags/old"));
    assert_eq!(missing.object, id(2));
    assert_eq!(missing.count, 3);
    assert_eq!(
        err.to_string(),
        format!(
            "refusing an incomplete answer from the source: refs/tags/old points at {}, which is not in the \
             source's pack (2 objects) (3 objects missing); nothing was published",
            id(2)
        )
    );
}

#[tokio::test]
async fn an_absent_link_is_named_and_proven_tips_are_not_looked_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_pack(dir.path(), &[id(1)]).await;
    let scanner = scanner_linking(&[id(1), id(9)]);
    let received = Received {
        index: None,
        scanner: &scanner,
        objects: 0,
    };
    // id(7) is a tip the mirror publishes already: not looked up (no pack holds it).
    let want = desired(&[("refs/heads/main", id(7))]);
    let err = check(&store, &want, &[id(7)], &[id(0xee)], &received)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing an incomplete answer from the source: the objects to publish link to {}, which is not in \
             the source's pack (0 objects) nor in a pack the mirror lists; nothing was published",
            id(9)
        )
    );
}

#[tokio::test]
async fn a_listed_pack_without_its_index_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let scanner = Scanner::none();
    let received = Received {
        index: None,
        scanner: &scanner,
        objects: 0,
    };
    let want = desired(&[("refs/heads/main", id(7))]);
    let err = check(&store, &want, &[], &[id(0xee)], &received)
        .await
        .unwrap_err();
    assert!(matches!(err, MirrorError::Store(_)), "{err}");
}

#[tokio::test]
async fn many_repeated_links_to_absent_objects_are_counted_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_pack(dir.path(), &[id(1)]).await;
    // 3,000 trees, each naming id(1) (listed), id(3) (in the new pack) and one of 40 absent ids.
    let mut scanner = Scanner::collecting_links(1 << 20);
    for n in 0..3_000u32 {
        let mut absent = [0x90; 20];
        absent[19] = (n % 40) as u8;
        let mut tree = Vec::new();
        for (name, link) in [("a", id(1).0), ("b", id(3).0), ("c", absent)] {
            tree.extend_from_slice(format!("100644 {name}\0").as_bytes());
            tree.extend_from_slice(&link);
        }
        let mut oid = [0x11; 20];
        oid[..4].copy_from_slice(&n.to_be_bytes());
        scanner
            .visit(crate::git::oid::ObjectKind::Tree, ObjectId(oid), &tree)
            .unwrap();
    }
    scanner.compact_links();
    assert_eq!(scanner.link_count(), 42);
    let new_index = index_of(&[id(3)]);
    // The tip is in the new pack; 40 of the links are nowhere.
    let tip = desired(&[("refs/heads/main", id(3))]);
    let new_pack = Received {
        index: Some(&new_index),
        scanner: &scanner,
        objects: 3_001,
    };
    let Err(MirrorError::Incomplete(missing)) =
        check(&store, &tip, &[], &[id(0xee)], &new_pack).await
    else {
        panic!("the absent links are found missing");
    };
    assert_eq!((missing.count, missing.ref_name.as_deref()), (40, None));
    // The lowest absent id.
    let mut lowest = [0x90; 20];
    lowest[19] = 0;
    assert_eq!(missing.object, ObjectId(lowest));
}

#[test]
fn links_to_objects_of_the_pack_with_computed_ids_are_forgotten_and_no_others() {
    use crate::git::oid::ObjectKind::Blob;
    let (a, b, c, d) = (id(1), id(2), id(3), id(4));
    let mut scanner = scanner_linking(&[d, a, c, b]);
    let mut near_c = c;
    near_c.0[19] ^= 1;
    let entries: Entries = [
        Entry::whole(12, 2, 10, Blob, 1, 0, Some(b)),
        // A delta whose id is not computed yet, one object whose id differs from a link's in one bit only, and a
        // REF delta that names `d` as its base: none of them proves a link present.
        Entry::ofs_delta(22, 3, 10, 0, 1, 1, 0),
        Entry::whole(32, 2, 10, Blob, 1, 0, Some(near_c)),
        Entry::whole(42, 2, 10, Blob, 1, 0, Some(a)),
        Entry::ref_delta(52, 22, 30, d, 1, 1, 0),
    ]
    .into_iter()
    .collect();
    forget_links_in_pack(&mut scanner, &entries);
    assert_eq!(scanner.links().copied().collect::<Vec<_>>(), [c, d]);
    assert_eq!(scanner.link_count(), 2);
}

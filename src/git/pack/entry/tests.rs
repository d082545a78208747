use super::*;

#[test]
fn an_entry_takes_54_bytes_at_byte_alignment() {
    assert_eq!(std::mem::size_of::<Entry>(), ENTRY_BYTES);
    assert_eq!(std::mem::align_of::<Entry>(), 1);
    // With the resolver's per-entry vectors, the bookkeeping per object stays within 64 bytes.
    const { assert!(ENTRY_BYTES as u64 + crate::git::resolve::BYTES_PER_ENTRY <= 64) };
}

#[test]
fn large_values_are_held_exactly_up_to_48_bits_and_saturate_beyond() {
    let big = Entry::MAX_VALUE;
    for (offset, len, size, result) in [
        (0, 2, 0, 0),
        (1 << 32, (1 << 32) + 7, (1 << 40) + 3, big),
        (big, big, big - 1, 1 << 47),
    ] {
        let d = Entry::ofs_delta(offset, 30, len, 7, size, result, u32::MAX);
        assert_eq!(
            (d.offset(), d.packed_len(), d.size(), d.result_size()),
            (offset, len, size, result)
        );
        assert_eq!(
            (d.crc32(), d.header_len(), d.base()),
            (u32::MAX, 30, Some(7))
        );
    }
    // A delta may declare any result size: beyond 48 bits it is held as the largest value.
    let d = Entry::ref_delta(5, 22, 9, ObjectId([2; 20]), 4, u64::MAX, 0);
    assert_eq!((d.result_size(), d.size()), (Entry::MAX_VALUE, 4));
    let w = Entry::whole(u64::MAX, 1, u64::MAX, ObjectKind::Blob, 1 << 50, 0, None);
    assert_eq!((w.offset(), w.packed_len(), w.size()), (big, big, big));
}

#[test]
fn every_kind_and_slot_survive_being_packed_together() {
    let oid = ObjectId([7; 20]);
    for kind in [
        ObjectKind::Commit,
        ObjectKind::Tree,
        ObjectKind::Blob,
        ObjectKind::Tag,
    ] {
        let mut e = Entry::whole(0, 1, 5, kind, 3, 0, None);
        assert_eq!(
            (e.kind(), e.oid(), e.ref_base()),
            (EntryKind::Base(kind), None, None)
        );
        e.set_oid(oid);
        assert_eq!(
            (e.kind(), e.oid(), e.base()),
            (EntryKind::Base(kind), Some(oid), None)
        );
        e.clear_oid();
        assert_eq!((e.kind(), e.oid()), (EntryKind::Base(kind), None));
    }
    let mut r = Entry::ref_delta(0, 21, 30, oid, 3, 4, 0);
    r.set_oid(ObjectId([8; 20]));
    assert_eq!(
        (r.kind(), r.ref_base(), r.oid()),
        (EntryKind::RefDelta, None, Some(ObjectId([8; 20])))
    );
    let shown = format!("{r:?}");
    assert!(
        shown.contains("kind: RefDelta") && shown.contains("packed_len: 30"),
        "{shown}"
    );
}

#[test]
fn a_ref_delta_keeps_its_base_id_until_its_base_entry_is_known() {
    let base = ObjectId([3; 20]);
    let mut e = Entry::ref_delta(100, 21, 40, base, 10, 12, 7);
    assert_eq!(
        (e.kind(), e.base(), e.oid()),
        (EntryKind::RefDelta, None, None)
    );
    assert_eq!((e.ref_base(), e.data_offset()), (Some(base), 121));
    e.clear_oid();
    assert_eq!(
        e.ref_base(),
        Some(base),
        "clearing an id that is not there keeps the base"
    );
    e.set_base(4);
    assert_eq!((e.base(), e.ref_base(), e.oid()), (Some(4), None, None));
    e.set_oid(ObjectId([9; 20]));
    assert_eq!((e.oid(), e.base()), (Some(ObjectId([9; 20])), Some(4)));
    e.clear_oid();
    assert_eq!((e.oid(), e.base(), e.ref_base()), (None, Some(4), None));
}

#[test]
fn whole_objects_and_ofs_deltas_record_what_they_are_given() {
    let oid = ObjectId([1; 20]);
    let w = Entry::whole(12, 2, 30, ObjectKind::Tree, 50, 5, Some(oid));
    assert_eq!(
        (w.kind(), w.oid(), w.base()),
        (EntryKind::Base(ObjectKind::Tree), Some(oid), None)
    );
    assert_eq!(
        (w.size(), w.result_size(), w.crc32(), w.is_delta()),
        (50, 50, 5, false)
    );
    let d = Entry::ofs_delta(42, 3, 9, 0, 6, 60, 8);
    assert_eq!(
        (d.kind(), d.base(), d.oid(), d.is_delta()),
        (EntryKind::OfsDelta, Some(0), None, true)
    );
    assert_eq!(
        (d.size(), d.result_size(), d.data_offset(), d.ref_base()),
        (6, 60, 45, None)
    );
}

#[test]
fn finds_entry_starts_at_any_distance() {
    for len in [0, 1, 2, 3, 7, 8, 9, 1000] {
        let entries: Entries = (0..len)
            .map(|i| Entry::whole(12 + i * 10, 2, 10, ObjectKind::Blob, 1, 0, None))
            .collect();
        for offset in 0..12 + len * 10 + 5 {
            let expected = (offset >= 12 && offset % 10 == 2 && offset < 12 + len * 10)
                .then(|| ((offset - 12) / 10) as u32);
            assert_eq!(
                entries.find_offset(offset),
                expected,
                "offset {offset} of {len}"
            );
        }
    }
}

#[test]
fn the_list_changes_ids_and_bases_in_place_and_ignores_entries_it_does_not_hold() {
    let base = ObjectId([3; 20]);
    let mut entries: Entries = [
        Entry::whole(12, 2, 10, ObjectKind::Blob, 5, 1, None),
        Entry::ref_delta(22, 22, 30, base, 4, 6, 2),
    ]
    .into_iter()
    .collect();
    entries.set_oid(0, ObjectId([1; 20]));
    entries.set_base(1, 0);
    entries.set_oid(2, ObjectId([2; 20]));
    entries.clear_oid(5);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries.get(0).oid(), Some(ObjectId([1; 20])));
    assert_eq!(
        (entries.get(1).base(), entries.get(1).ref_base()),
        (Some(0), None)
    );
    entries.clear_oid(0);
    let listed: Vec<Entry> = (&entries).into_iter().collect();
    assert_eq!(listed, entries.iter().collect::<Vec<_>>());
    assert_eq!(listed[0].oid(), None);
    assert!(format!("{entries:?}").contains("kind: RefDelta"));
}

use super::*;

#[test]
fn the_list_holds_40_bytes_per_entry_at_byte_alignment_and_less_per_side_slot() {
    assert_eq!(std::mem::size_of::<Record>(), ENTRY_BYTES);
    assert_eq!(std::mem::align_of::<Record>(), 1);
    assert_eq!(std::mem::size_of::<Spill>(), SPILL_BYTES);
    const { assert!(SPILL_BYTES <= ENTRY_BYTES && std::mem::size_of::<(u32, u32)>() <= ENTRY_BYTES) };
    // With the resolver's per-entry state, the bookkeeping per object stays within 64 bytes.
    const { assert!(ENTRY_BYTES as u64 + crate::git::resolve::BYTES_PER_ENTRY <= 64) };
}

/// `entries` pushed into a list, checked to come back exactly; the list.
fn round_trip(entries: &[Entry]) -> Entries {
    let mut list: Entries = entries.iter().copied().collect();
    assert_eq!(list.iter().collect::<Vec<_>>(), entries);
    list.shrink_to_fit();
    list
}

#[test]
fn every_value_is_held_exactly_small_ones_in_the_record_others_in_the_side_table() {
    let oid = ObjectId([4; 20]);
    let (delta_max, header_max) = ((1 << DELTA_SIZE_BITS) - 1, (1 << HEADER_BITS) - 1);
    // Values that fit the record, up to the largest of each field.
    let fits = [
        Entry::whole(12, 1, 3, ObjectKind::Commit, 0, 0, Some(oid)),
        Entry::whole(
            15,
            header_max,
            40,
            ObjectKind::Blob,
            u64::from(u32::MAX),
            u32::MAX,
            None,
        ),
        Entry::ofs_delta(55, 2, 10, 1, delta_max, u64::from(u32::MAX), 7),
        Entry::ref_delta(65, 21, 30, oid, 0, 0, 9),
    ];
    let list = round_trip(&fits);
    assert_eq!(list.side_slots(), 0);
    // One past each, and the largest values a u64 holds: each entry spills.
    let spills = [
        Entry::whole(12, 1, 3, ObjectKind::Blob, 1 << 32, 0, None),
        Entry::whole(15, header_max + 1, 40, ObjectKind::Tree, 5, 1, None),
        Entry::ofs_delta(55, 2, 10, 1, delta_max + 1, 3, 2),
        Entry::ofs_delta(65, 2, 10, 2, 4, 1 << 32, 2),
        Entry::ref_delta(75, 30, 35, oid, u64::MAX, u64::MAX, 3),
        Entry::whole(110, u8::MAX, 300, ObjectKind::Blob, u64::MAX, 4, None),
    ];
    let list = round_trip(&spills);
    assert_eq!(list.side_slots(), spills.len());
    // Spilled and fitting entries mixed: each finds its own values.
    let mixed: Vec<Entry> = fits
        .iter()
        .chain(&spills)
        .enumerate()
        .map(|(i, e)| at(e, 12 + 100 * i as u64))
        .collect();
    round_trip(&mixed);
}

/// `e` moved to `offset`, 100 bytes long.
fn at(e: &Entry, offset: u64) -> Entry {
    Entry {
        offset,
        packed_len: 100,
        ..*e
    }
}

#[test]
fn offsets_past_4_gib_are_exact_with_a_side_slot_per_change_of_their_high_bits() {
    let blob = |offset, len| Entry::whole(offset, 2, len, ObjectKind::Blob, 1, 0, None);
    let four = 1u64 << 32;
    let entries = [
        blob(12, four - 20),
        blob(four - 8, 16),
        blob(four + 8, 5 * four),
        blob(6 * four + 8, 2),
        blob(6 * four + 10, u64::MAX - 6 * four - 10),
    ];
    let list = round_trip(&entries);
    assert_eq!(list.side_slots(), 2);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(list.find_offset(e.offset()), Some(i as u32));
        assert_eq!(list.find_offset(e.offset() + 1), None);
    }
    assert_eq!(list.get(4).packed_len(), u64::MAX - 6 * four - 10);
}

#[test]
fn an_entry_runs_up_to_the_next_one_and_the_last_one_as_long_as_given() {
    let blob = |offset, len| Entry::whole(offset, 2, len, ObjectKind::Blob, 1, 0, None);
    let list: Entries = [blob(12, 5), blob(20, 7), blob(30, 1 << 40)]
        .into_iter()
        .collect();
    let lens: Vec<u64> = list.iter().map(|e| e.packed_len()).collect();
    assert_eq!(lens, [8, 10, 1 << 40]);
    // Out of order, an entry has no room; at the end of the offsets, the last one ends there.
    let list: Entries = [blob(20, 5), blob(12, 5), blob(u64::MAX - 2, 9)]
        .into_iter()
        .collect();
    let lens: Vec<u64> = list.iter().map(|e| e.packed_len()).collect();
    assert_eq!(lens, [0, u64::MAX - 14, 2]);
    assert_eq!(list.get(2).data_offset(), u64::MAX);
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

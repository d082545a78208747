use super::*;

#[test]
fn an_entry_takes_64_bytes() {
    assert_eq!(std::mem::size_of::<Entry>(), ENTRY_BYTES);
    const { assert!(ENTRY_BYTES <= 64) };
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
        (w.size, w.result_size, w.crc32, w.is_delta()),
        (50, 50, 5, false)
    );
    let d = Entry::ofs_delta(42, 3, 9, 0, 6, 60, 8);
    assert_eq!(
        (d.kind(), d.base(), d.oid(), d.is_delta()),
        (EntryKind::OfsDelta, Some(0), None, true)
    );
    assert_eq!(
        (d.size, d.result_size, d.data_offset(), d.ref_base()),
        (6, 60, 45, None)
    );
}

use super::*;

#[test]
fn counts_stay_exact_across_the_spill_to_the_side_table_and_back() {
    let (a, b) = (EntryIndex::new(1), EntryIndex::new(2));
    let mut counts = Counts::new(3);
    assert!(counts.is_zero(a));
    for n in 1..=1000u32 {
        counts.increment(a);
        assert_eq!(counts.get(a), n);
        assert!(!counts.is_zero(a));
    }
    // Only the entry past one byte's range takes room in the side table.
    assert_eq!(counts.spilled.len(), 1);
    assert_eq!(counts.get(b), 0);
    for n in (0..1000u32).rev() {
        counts.decrement(a);
        assert_eq!(counts.get(a), n);
    }
    assert!(counts.is_zero(a) && counts.spilled.is_empty());
    // Below zero it stays at zero.
    counts.decrement(a);
    assert!(counts.is_zero(a));
    for _ in 0..u32::from(SPILLED) - 1 {
        counts.increment(b);
    }
    assert_eq!((counts.get(b), counts.spilled.len()), (254, 0));
    counts.increment(b);
    assert_eq!((counts.get(b), counts.spilled.len()), (255, 1));
}

#[test]
fn states_keep_each_kind_and_the_resolved_bit_apart() {
    let kinds = [
        ObjectKind::Commit,
        ObjectKind::Tree,
        ObjectKind::Blob,
        ObjectKind::Tag,
    ];
    let mut states = EntryStates::new(kinds.into_iter());
    assert_eq!(states.kinds(), kinds);
    let i = EntryIndex::new(2);
    states.set_resolved(i);
    states.set_resolved(i);
    assert_eq!(states.resolved(), 1);
    for kind in kinds {
        states.set_kind(i, kind);
        assert_eq!(states.kind(i), kind);
        assert!(states.is_resolved(i));
    }
    assert!(!states.is_resolved(EntryIndex::new(3)));
    assert_eq!(states.kind(EntryIndex::new(3)), ObjectKind::Tag);
}

#[test]
fn the_deferred_bit_is_apart_from_the_kind_and_the_resolved_bit_and_cleared_for_a_pass() {
    let kinds = [ObjectKind::Tag, ObjectKind::Blob, ObjectKind::Tree];
    let mut states = EntryStates::new(kinds.into_iter());
    let (a, b) = (EntryIndex::new(0), EntryIndex::new(1));
    states.set_resolved(a);
    states.set_deferred(a);
    states.set_deferred(b);
    assert!(states.is_deferred(a) && states.is_deferred(b));
    assert!(!states.is_deferred(EntryIndex::new(2)));
    assert_eq!(states.kinds(), kinds);
    assert!(states.is_resolved(a) && !states.is_resolved(b));
    states.set_kind(b, ObjectKind::Commit);
    assert!(states.is_deferred(b));
    states.clear_deferred();
    assert!(!states.is_deferred(a) && !states.is_deferred(b));
    assert_eq!(states.kind(a), ObjectKind::Tag);
    assert_eq!(states.kind(b), ObjectKind::Commit);
    assert!(states.is_resolved(a));
    assert_eq!(states.resolved(), 1);
}

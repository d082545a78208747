use super::*;

fn id(n: u32) -> ObjectId {
    let mut id = [0; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[19] = n as u8;
    ObjectId(id)
}

/// A scrambled order of `0..n` (a fixed permutation).
fn scrambled(n: u32) -> impl Iterator<Item = u32> {
    (0..n).map(move |i| (i as u64 * 7919 % n as u64) as u32)
}

#[test]
fn holds_each_distinct_id_once_in_order_after_compaction() {
    let mut set = LinkSet::new(1 << 18);
    assert!(set.is_empty());
    // Every id three times, in scrambled orders, with the zero id among them.
    for _ in 0..3 {
        for n in scrambled(10_007) {
            set.insert(id(n)).unwrap();
        }
    }
    assert_eq!(set.len(), 10_007);
    assert!(set.runs.len() > 1, "several runs before compaction");
    for n in [0, 1, 5_000, 10_006] {
        assert!(set.contains(&id(n)), "{n}");
    }
    assert!(!set.contains(&id(10_007)));
    assert!(!set.contains(&ObjectId([0xff; 20])));
    set.compact();
    assert_eq!(set.runs.len(), 1);
    let held: Vec<ObjectId> = set.iter().copied().collect();
    let expected: Vec<ObjectId> = (0..10_007).map(id).collect();
    assert_eq!(held, expected);
    // Inserting after compaction still works, and repeats still count once.
    set.insert(id(3)).unwrap();
    set.insert(id(20_000)).unwrap();
    assert_eq!(set.len(), 10_008);
}

#[test]
fn runs_stay_disjoint_and_shrink_geometrically() {
    let mut set = LinkSet::new(8 << 20);
    for n in scrambled(200_003) {
        set.insert(id(n)).unwrap();
        set.insert(id(n / 2)).unwrap();
    }
    set.flush();
    for pair in set.runs.windows(2) {
        assert!(
            pair[1].len * 2 < pair[0].len,
            "{} then {}",
            pair[0].len,
            pair[1].len
        );
    }
    let total: usize = set.runs.iter().map(|r| r.len).sum();
    assert_eq!(total, 200_003);
    assert_eq!(set.len(), 200_003);
    // Blocks are full except each run's last, which is exact.
    for run in &set.runs {
        let (last, full) = run.blocks.split_last().unwrap();
        assert!(full.iter().all(|b| b.len() == BLOCK));
        assert!(!last.is_empty() && last.len() <= BLOCK);
    }
}

#[test]
fn costs_about_twenty_bytes_per_distinct_id() {
    let n = 300_000;
    let mut set = LinkSet::new(64 << 20);
    for round in 0..4 {
        for i in scrambled(n) {
            // A repeat-heavy stream, as trees' links are.
            set.insert(id(i / (round + 1))).unwrap();
        }
    }
    set.compact();
    let per_id = set.bytes() as f64 / set.len() as f64;
    assert_eq!(set.len(), n as usize);
    // The buffer's full length is counted even when freed: 20.0 plus a few bytes at this size.
    assert!(per_id < 22.5, "{per_id} bytes per id");
}

#[test]
fn a_set_past_its_limit_refuses_more_and_keeps_what_it_holds() {
    let limit = 10_000 * ID_BYTES;
    let mut set = LinkSet::new(limit);
    let mut refused = None;
    for n in 0..20_000 {
        if let Err(full) = set.insert(id(n)) {
            refused = Some((n, full));
            break;
        }
    }
    let (n, full) = refused.expect("the limit is reached");
    assert_eq!(full.limit, limit);
    assert!(set.bytes() <= limit, "{} bytes", set.bytes());
    assert!(
        full.held <= n as usize && full.held > 8_000,
        "{full:?} at {n}"
    );
    assert_eq!(
        full.to_string(),
        format!("{} distinct ids fill the {limit} bytes allowed", full.held)
    );
    // Repeats of held ids are still taken once the buffer is flushed: they cost nothing.
    for n in 0..full.held as u32 {
        let _ = set.insert(id(n));
    }
    assert!(set.bytes() <= limit);
}

#[test]
fn repeats_never_fill_a_set() {
    let mut set = LinkSet::new(100 * ID_BYTES);
    for _ in 0..100_000 {
        set.insert(id(7)).unwrap();
        set.insert(id(8)).unwrap();
    }
    assert_eq!(set.len(), 2);
    assert!(set.bytes() <= 100 * ID_BYTES);
}

#[test]
fn ids_differing_only_in_their_last_bytes_are_distinct() {
    // Exact membership: ids a source chose to share a long prefix are never confused.
    let mut set = LinkSet::new(1 << 20);
    let mut near = [0x5a; 20];
    for last in 0..=255u8 {
        near[19] = last;
        if last % 2 == 0 {
            set.insert(ObjectId(near)).unwrap();
        }
    }
    set.compact();
    for last in 0..=255u8 {
        near[19] = last;
        assert_eq!(set.contains(&ObjectId(near)), last % 2 == 0, "{last}");
    }
    assert_eq!(set.len(), 128);
}

#[test]
fn sets_with_the_same_ids_are_equal_however_they_are_held() {
    let mut a = LinkSet::new(1 << 20);
    let mut b = LinkSet::new(1 << 18);
    for n in 0..5_000 {
        a.insert(id(n)).unwrap();
        b.insert(id(4_999 - n)).unwrap();
        b.insert(id(n)).unwrap();
    }
    b.compact();
    assert_eq!(a, b);
    a.insert(id(9_999)).unwrap();
    assert_ne!(a, b);
}

#[test]
fn removing_sorted_ids_drops_exactly_those_and_frees_their_room() {
    let mut set = LinkSet::new(1 << 20);
    for n in scrambled(20_011) {
        set.insert(id(n)).unwrap();
    }
    set.compact();
    let before = set.bytes();
    // Every even id, each twice, and ids the set never held (beyond its range, and ones differing from held ids
    // only in their last byte); the buffer's ids are removed too.
    set.insert(id(30_000)).unwrap();
    let mut near = id(7);
    near.0[19] ^= 1;
    let mut remove: Vec<ObjectId> = (0..25_000)
        .step_by(2)
        .flat_map(|n| [id(n), id(n)])
        .chain([near, id(30_000), ObjectId([0xff; 20])])
        .collect();
    remove.sort_unstable();
    set.remove_sorted(remove);
    assert_eq!((set.len(), set.runs.len()), (10_005, 1));
    for n in 0..20_011 {
        assert_eq!(set.contains(&id(n)), n % 2 == 1, "{n}");
    }
    assert!(!set.contains(&id(30_000)));
    assert!(
        before - set.bytes() >= 10_000 * ID_BYTES,
        "{} of {before}",
        set.bytes()
    );
    let held: Vec<ObjectId> = set.iter().copied().collect();
    let expected: Vec<ObjectId> = (1..20_011).step_by(2).map(id).collect();
    assert_eq!(held, expected);
    // A removed id can come back.
    set.insert(id(4)).unwrap();
    assert!(set.contains(&id(4)));
    assert_eq!(set.len(), 10_006);
    // Removing everything leaves an empty set, and nothing from an empty one.
    let mut all: Vec<ObjectId> = set.iter().copied().collect();
    all.sort_unstable();
    set.remove_sorted(all);
    assert!(set.is_empty() && set.runs.is_empty());
    set.remove_sorted([id(1)]);
    assert!(set.is_empty());
}

#[test]
fn recent_repeats_never_reach_the_buffer() {
    let mut set = LinkSet::new(1 << 20);
    for _ in 0..1_000 {
        for n in 0..8 {
            set.insert(id(n)).unwrap();
        }
    }
    // Eight ids in their own slots: each entered the buffer once.
    assert_eq!(set.buffer.len(), 8);
    assert_eq!(set.len(), 8);
}

#[test]
fn the_table_of_recent_ids_never_drops_a_new_id() {
    let mut set = LinkSet::new(1 << 20);
    // The zero id is not mistaken for an empty slot, before or after the table is allocated.
    set.insert(id(1)).unwrap();
    assert!(!set.contains(&ObjectId([0; 20])));
    set.insert(ObjectId([0; 20])).unwrap();
    assert!(set.contains(&ObjectId([0; 20])));
    // Ids a source chose to share a slot (same first eight bytes), inserted in turns: all are held.
    let mut shared = [0x42; 20];
    for round in 0..3 {
        for last in 0..64u8 {
            shared[19] = last;
            set.insert(ObjectId(shared)).unwrap();
        }
        assert_eq!(set.len(), 2 + 64, "round {round}");
    }
    // An id removed is taken again, though it was among the most recent.
    let fresh = id(77);
    set.insert(fresh).unwrap();
    set.remove_sorted([fresh]);
    assert!(!set.contains(&fresh));
    set.insert(fresh).unwrap();
    assert!(set.contains(&fresh));
}

#[test]
fn an_id_refused_for_lack_of_room_is_not_taken_as_recent() {
    let limit = LinkSet::new(0).bytes() + 64 * ID_BYTES;
    let mut set = LinkSet::new(limit);
    let refused = (0..10_000)
        .map(id)
        .find(|&n| set.insert(n).is_err())
        .expect("the limit is reached");
    assert!(!set.contains(&refused));
    assert!(set.insert(refused).is_err(), "still refused");
}

#[test]
fn the_table_of_recent_ids_is_counted_from_the_start() {
    let empty = LinkSet::new(64 << 20);
    assert_eq!(
        empty.bytes(),
        MAX_BUFFER as u64 * ID_BYTES + Recent::bytes(MAX_BUFFER / RECENT_PER_BUFFER)
    );
    // The smallest set still has one slot, within its buffer's count.
    let small = LinkSet::new(0);
    assert_eq!(small.recent_len, 1);
    assert_eq!(
        small.bytes(),
        MIN_BUFFER as u64 * ID_BYTES + Recent::bytes(1)
    );
}

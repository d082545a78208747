use super::*;
use crate::git::idx::{write_idx_v2_with_limit, IdxEntry};
use testkit::rng::Rng;

fn ids(n: usize, seed: u64) -> Vec<ObjectId> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let mut id = [0u8; 20];
            rng.fill(&mut id);
            ObjectId(id)
        })
        .collect()
}

fn index_of(objects: &[ObjectId]) -> Vec<u8> {
    let mut entries: Vec<IdxEntry> = objects
        .iter()
        .enumerate()
        .map(|(i, oid)| IdxEntry {
            oid: *oid,
            crc32: 0,
            offset: 12 + i as u64,
        })
        .collect();
    write_idx_v2_with_limit(&mut entries, &ObjectId::ZERO, u64::MAX).unwrap()
}

/// Looks `wanted` up the way the mirror does: fan-out, then only the planned reads.
fn lookup(
    index: &[u8],
    wanted: &mut [ObjectId],
    max_gap: u64,
    max_read: u64,
) -> (Vec<bool>, usize) {
    wanted.sort();
    let fanout = Fanout::parse(&index[..FANOUT_END as usize]).unwrap();
    let reads = fanout.plan_reads(wanted, max_gap, max_read);
    let mut found = vec![false; wanted.len()];
    let mut next = 0;
    for read in &reads {
        let table = &index[read.start as usize..read.end as usize];
        while let Some(id) = wanted.get(next) {
            match fanout.find_in(read, table, id) {
                Some(hit) => found[next] = hit,
                None => break,
            }
            next += 1;
        }
    }
    assert!(
        next == wanted.len() || reads.is_empty(),
        "every id was covered by a read"
    );
    (found, reads.len())
}

#[test]
fn finds_what_the_index_holds_and_nothing_else() {
    let held = ids(5000, 1);
    let index = index_of(&held);
    let fanout = Fanout::parse(&index).unwrap();
    assert_eq!(fanout.objects(), 5000);
    let mut wanted: Vec<ObjectId> = held.iter().step_by(7).copied().collect();
    let absent = ids(300, 2);
    wanted.extend(&absent);
    for (gap, max_read) in [(0, 0), (64 << 10, 4 << 20), (u64::MAX, u64::MAX)] {
        let mut w = wanted.clone();
        let (found, reads) = lookup(&index, &mut w, gap, max_read);
        for (id, hit) in w.iter().zip(found) {
            assert_eq!(hit, held.contains(id), "{id} with gap {gap}");
        }
        if gap == u64::MAX {
            assert_eq!(reads, 1, "everything merged into one read");
        } else if gap == 0 && max_read == 0 {
            assert!(reads > 200, "one read per first byte: {reads}");
        }
    }
}

#[test]
fn an_empty_index_holds_nothing() {
    let index = index_of(&[]);
    let mut wanted = ids(10, 3);
    let (found, reads) = lookup(&index, &mut wanted, 0, 0);
    assert_eq!(reads, 0);
    assert!(found.iter().all(|hit| !hit));
}

#[test]
fn damaged_headers_are_refused() {
    let index = index_of(&ids(10, 4));
    assert_eq!(Fanout::parse(&index[..100]), Err(LookupError::NotAnIndex));
    let mut v1 = index.clone();
    v1[7] = 1;
    assert_eq!(Fanout::parse(&v1), Err(LookupError::NotAnIndex));
    let mut unsorted = index.clone();
    unsorted[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(Fanout::parse(&unsorted), Err(LookupError::BadFanout));
}

#[test]
fn a_read_of_the_wrong_length_finds_nothing() {
    let held = ids(50, 5);
    let index = index_of(&held);
    let fanout = Fanout::parse(&index).unwrap();
    let range = fanout.table_range();
    let short = &index[range.start as usize..range.end as usize - 1];
    assert_eq!(fanout.find_in(&range, short, &held[0]), None);
}

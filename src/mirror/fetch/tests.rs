use super::*;

#[test]
fn budget_parts_stay_within_total() {
    for mib in [24u64, 32, 256, 3008, 10240] {
        let b = Budget::new(mib << 20);
        let used = store::UPLOAD_BUFFER_BYTES
            + b.in_memory_pack
            + b.object_cache
            + b.read_chunk * b.read_chunks as u64;
        assert!(
            used <= (mib << 20).max(crate::options::MIN_MEMORY_BUDGET) + (8 << 20),
            "{mib} MiB budget overspent: {used}"
        );
        assert!(b.big_object >= 1 << 20);
    }
}

#[test]
fn the_smallest_budget_holds_the_upload_buffers_and_the_least_rest() {
    assert_eq!(
        crate::options::MIN_MEMORY_BUDGET,
        store::UPLOAD_BUFFER_BYTES + Budget::MIN_REST
    );
}

#[test]
fn temporary_upload_names_differ_within_a_process() {
    assert_ne!(run_id(), run_id());
}

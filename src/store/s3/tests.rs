use super::*;
use crate::store::{part_size_for, upload_buffer_bytes, MAX_FIRST_PART_SIZE};

#[test]
fn part_sizes_cover_the_largest_object() {
    for first in [
        FIRST_PART_SIZE,
        12 << 20,
        MAX_FIRST_PART_SIZE,
        MAX_PART_SIZE,
    ] {
        let mut total = 0u64;
        for n in 1..=MAX_PARTS {
            let size = part_size(first, n);
            assert!(size <= MAX_PART_SIZE, "part {n} is {size} bytes");
            assert!(size >= 5 << 20, "part {n} is {size} bytes");
            assert!(
                n == 1 || size >= part_size(first, n - 1),
                "sizes never shrink"
            );
            total += size;
        }
        assert!(total >= MAX_OBJECT_SIZE, "{first}: {total}");
        assert_eq!(part_size(first, 1), first);
        assert_eq!(part_size(first, 1000), first);
        assert_eq!(part_size(first, 1001), (2 * first).min(MAX_PART_SIZE));
        // Out-of-range part numbers stay within the limits instead of overflowing.
        assert_eq!(part_size(first, 0), first);
        assert!(part_size(first, u32::MAX) <= MAX_PART_SIZE);
    }
    assert_eq!(part_size(FIRST_PART_SIZE, MAX_PARTS), 4 << 30);
    // Packs up to 1,000 × 8 MiB (7.8 GiB), nearly all of them, use parts of the first size only.
    assert_eq!(u64::from(PARTS_PER_DOUBLING) * FIRST_PART_SIZE, 8000 << 20);
    // The multipart copy covers the largest object too.
    assert!(
        COPY_PART_SIZE * u64::from(MAX_PARTS) >= MAX_OBJECT_SIZE
            && COPY_PART_SIZE <= MAX_SINGLE_COPY
    );
}

#[test]
fn the_part_size_follows_the_memory_budget() {
    assert_eq!(part_size_for(24 << 20), FIRST_PART_SIZE);
    assert_eq!(part_size_for(128 << 20), 8 << 20);
    assert_eq!(part_size_for(256 << 20), 16 << 20);
    assert_eq!(part_size_for(10 << 30), MAX_FIRST_PART_SIZE);
    assert_eq!(upload_buffer_bytes(16 << 20), 32 << 20);
}

#[test]
fn copy_sources_are_percent_encoded() {
    assert_eq!(percent_encode("a/b-c_d.e~f"), "a/b-c_d.e~f");
    assert_eq!(
        percent_encode("refs/heads/a b+c%é"),
        "refs/heads/a%20b%2Bc%25%C3%A9"
    );
}

#[tokio::test]
async fn targets_are_validated() {
    let opts = S3Options::default();
    for (bucket, prefix) in [("", "x"), ("b", "a//b"), ("b", "../x"), ("b", "a/./b")] {
        let err = S3Store::connect(bucket, prefix, &opts).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidTarget { .. }),
            "{bucket} {prefix}: {err}"
        );
    }
    let s = S3Store::connect("b", "/mirrors/x/", &opts).await.unwrap();
    assert_eq!(
        (s.describe(), s.prefix.as_str()),
        ("s3://b/mirrors/x".to_owned(), "mirrors/x/")
    );
    let s = S3Store::connect("b", "", &opts).await.unwrap();
    assert_eq!((s.describe(), s.prefix.as_str()), ("s3://b".to_owned(), ""));
}

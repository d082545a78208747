use super::*;

#[test]
fn part_sizes_cover_the_largest_object() {
    let mut total = 0u64;
    for n in 1..=MAX_PARTS {
        let size = part_size(n);
        assert!(size <= 5 << 30, "part {n} is {size} bytes");
        assert!(size >= 5 << 20, "part {n} is {size} bytes");
        assert!(n == 1 || size >= part_size(n - 1), "sizes never shrink");
        total += size;
    }
    assert!(total >= MAX_OBJECT_SIZE, "{total}");
    assert_eq!(part_size(1), 8 << 20);
    assert_eq!(part_size(1000), 8 << 20);
    assert_eq!(part_size(1001), 16 << 20);
    assert_eq!(part_size(MAX_PARTS), 4 << 30);
    // Out-of-range part numbers stay within the limits instead of overflowing.
    assert_eq!(part_size(0), 8 << 20);
    assert_eq!(part_size(u32::MAX), 4 << 30);
    // Packs up to 1,000 × 8 MiB (7.8 GiB), nearly all of them, use 8 MiB parts only.
    assert_eq!(u64::from(PARTS_PER_DOUBLING) * FIRST_PART_SIZE, 8000 << 20);
    // The multipart copy covers the largest object too.
    assert!(
        COPY_PART_SIZE * u64::from(MAX_PARTS) >= MAX_OBJECT_SIZE
            && COPY_PART_SIZE <= MAX_SINGLE_COPY
    );
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

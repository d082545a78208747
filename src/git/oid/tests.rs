use super::*;

#[test]
fn hashes_like_git() {
    // `printf 'hello\n' | git hash-object --stdin`
    assert_eq!(
        hash_object(ObjectKind::Blob, b"hello\n").to_hex(),
        "ce013625030ba8dba906f756967f9e9ca394464a"
    );
    // The empty tree.
    assert_eq!(
        hash_object(ObjectKind::Tree, b"").to_hex(),
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    );
}

#[test]
fn hex_round_trip_and_rejects_bad_input() {
    let hex = "ce013625030ba8dba906f756967f9e9ca394464a";
    let id: ObjectId = hex.parse().unwrap();
    assert_eq!(id.to_string(), hex);
    assert_eq!(
        ObjectId::from_hex(hex.to_uppercase().as_bytes()).unwrap(),
        id
    );
    assert!(ObjectId::from_hex(b"ce01").is_err());
    assert!(ObjectId::from_hex(b"zz013625030ba8dba906f756967f9e9ca394464a").is_err());
    assert!(ObjectId::from_hex("é".repeat(20).as_bytes()).is_err());
    assert!(ObjectId::ZERO.is_zero());
}

#[test]
fn orders_as_its_bytes() {
    // Pairs that differ in one byte, at every position (each word's first and last byte included), by the
    // smallest and the largest step, and with the high bit set (a signed comparison would get these wrong).
    let mut ids = vec![ObjectId::ZERO, ObjectId([0xff; 20])];
    for position in 0..20 {
        for (low, high) in [(0x00, 0x01), (0x7f, 0x80), (0x00, 0xff), (0xfe, 0xff)] {
            for fill in [0x00, 0x80, 0xff] {
                let mut a = [fill; 20];
                let mut b = [fill; 20];
                a[position] = low;
                b[position] = high;
                ids.push(ObjectId(a));
                ids.push(ObjectId(b));
            }
        }
    }
    for a in &ids {
        for b in &ids {
            assert_eq!(a.cmp(b), a.0.cmp(&b.0), "{a} against {b}");
            assert_eq!(a.partial_cmp(b), Some(a.0.cmp(&b.0)));
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    let mut by_bytes = ids;
    by_bytes.sort_by_key(|id| id.0);
    assert_eq!(sorted, by_bytes);
}

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

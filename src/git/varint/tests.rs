use super::*;

/// Reads a whole number the way the pack and delta readers do.
fn read(bytes: &[u8]) -> Option<u64> {
    let (mut value, mut shift) = (0, 0);
    for &byte in bytes {
        value = push_le128(value, shift, byte)?;
        shift += 7;
    }
    Some(value)
}

#[test]
fn reads_groups_least_significant_first() {
    assert_eq!(read(&[0x05]), Some(5));
    assert_eq!(read(&[0xac, 0x02]), Some(300));
    assert_eq!(read(&[0x80, 0x80, 0x01]), Some(1 << 14));
}

#[test]
fn refuses_numbers_beyond_64_bits() {
    // Ten groups: 63 bits from the first nine, then the top bit alone fits.
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(read(&max), Some(u64::MAX));
    let mut over = vec![0xff; 9];
    over.push(0x02);
    assert_eq!(read(&over), None);
    // Any group at bit 64, even a zero one.
    assert_eq!(push_le128(0, 64, 0), None);
    assert_eq!(push_le128(0, 70, 0x01), None);
    // Shifts that are not multiples of 7 (a pack entry's size starts at bit 4).
    assert_eq!(push_le128(0, 60, 0x0f), Some(0xf << 60));
    assert_eq!(push_le128(0, 60, 0x10), None);
}

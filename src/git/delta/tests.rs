use super::*;
use testkit::delta::{encode, make, varint, Op};

/// Decodes `delta` fed in chunks of `chunk` bytes, applying it to `base` like the streaming resolver does.
fn apply_chunked(base: &[u8], delta: &[u8], chunk: usize) -> Result<Vec<u8>, DeltaError> {
    let mut decoder = DeltaDecoder::new();
    let mut out = Vec::new();
    for piece in delta.chunks(chunk) {
        let mut pos = 0;
        loop {
            let (used, step) = decoder.step(&piece[pos..])?;
            pos += used;
            match step {
                DeltaStep::Header(h) => assert_eq!(h.base_size, base.len() as u64),
                DeltaStep::Copy { offset, len } => {
                    out.extend_from_slice(&base[offset as usize..(offset + len) as usize])
                }
                DeltaStep::Insert(bytes) => out.extend_from_slice(bytes),
                DeltaStep::NeedInput => break,
            }
        }
        assert_eq!(pos, piece.len());
    }
    decoder.finish()?;
    Ok(out)
}

#[test]
fn applies_copy_and_insert() {
    let base = b"hello, world\n";
    let delta = encode(
        13,
        14,
        &[Op::Copy(7, 5), Op::Insert(b", hi".to_vec()), Op::Copy(0, 5)],
    );
    assert_eq!(apply(base, &delta).unwrap(), b"world, hihello");
}

#[test]
fn every_chunking_gives_the_same_result() {
    let base: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut target = base[10..70_000].to_vec();
    target.extend_from_slice(&[42; 300]);
    target.extend_from_slice(&base[0x1_0000..0x1_0000 + 0x1_0000]);
    target.extend_from_slice(&base[0x01_02_03..0x01_02_03 + 5]);
    let ops = [
        Op::Copy(10, 69_990),
        Op::Insert(vec![42; 300]),
        Op::Copy(0x1_0000, 0x1_0000),
        Op::Copy(0x01_02_03, 5),
    ];
    let delta = encode(base.len() as u64, target.len() as u64, &ops);
    assert_eq!(apply(&base, &delta).unwrap(), target);
    for chunk in [1, 2, 3, 5, 7, 64, 127, 128, 1000] {
        assert_eq!(
            apply_chunked(&base, &delta, chunk).unwrap(),
            target,
            "chunk {chunk}"
        );
    }
}

#[test]
fn copy_of_size_zero_means_64k_and_all_argument_bytes_decode() {
    let base: Vec<u8> = (0..0x2_0000u32 + 300).map(|i| (i % 253) as u8).collect();
    let mut delta = varint(base.len() as u64);
    delta.extend(varint(0x10000));
    // Offset 0x0001_0100 in offset bytes 1 and 2, no size bytes: size 0 means 0x10000.
    delta.extend_from_slice(&[0x86, 0x01, 0x01]);
    assert_eq!(apply(&base, &delta).unwrap(), &base[0x10100..0x20100]);
    // All four offset bytes and all three size bytes.
    let big_base = vec![7u8; 0x0102_0305];
    let delta = encode(
        big_base.len() as u64,
        0x02_0304,
        &[Op::Copy(0x0100_0001, 0x02_0304)],
    );
    let mut header = varint(big_base.len() as u64);
    header.extend(varint(0x02_0304));
    assert_eq!(delta[header.len()], 0x80 | 0b0111_1001);
    assert_eq!(apply(&big_base, &delta).unwrap().len(), 0x02_0304);
}

#[test]
fn make_builds_valid_deltas() {
    let base = b"The quick brown fox jumps over the lazy dog".to_vec();
    for target in [
        &b"The quick brown cat jumps over the lazy dog"[..],
        b"",
        b"The quick",
        b"lazy dog",
        b"something else entirely",
    ] {
        assert_eq!(apply(&base, &make(&base, target)).unwrap(), target);
    }
    assert_eq!(apply(b"", &make(b"", b"new")).unwrap(), b"new");
}

#[test]
fn empty_result() {
    assert_eq!(apply(b"abc", &encode(3, 0, &[])).unwrap(), b"");
}

#[test]
fn rejects_base_size_mismatch() {
    let delta = encode(4, 3, &[Op::Copy(0, 3)]);
    assert_eq!(
        apply(b"abc", &delta),
        Err(DeltaError::BaseSizeMismatch {
            declared: 4,
            actual: 3
        })
    );
}

#[test]
fn rejects_copy_outside_base() {
    let delta = encode(3, 2, &[Op::Copy(2, 2)]);
    assert_eq!(
        apply(b"abc", &delta),
        Err(DeltaError::CopyOutOfRange {
            offset: 2,
            len: 2,
            base_size: 3
        })
    );
    // The largest offset and size: no arithmetic overflow, just an error.
    let delta = [
        &encode(3, 5, &[])[..],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]
    .concat();
    assert!(matches!(
        apply(b"abc", &delta),
        Err(DeltaError::CopyOutOfRange { .. })
    ));
}

#[test]
fn rejects_results_longer_or_shorter_than_declared() {
    let longer = encode(3, 2, &[Op::Copy(0, 3)]);
    assert_eq!(
        apply(b"abc", &longer),
        Err(DeltaError::ResultTooLong { declared: 2 })
    );
    let longer_insert = encode(3, 2, &[Op::Insert(b"xyz".to_vec())]);
    assert_eq!(
        apply(b"abc", &longer_insert),
        Err(DeltaError::ResultTooLong { declared: 2 })
    );
    let shorter = encode(3, 4, &[Op::Copy(0, 3)]);
    assert_eq!(
        apply(b"abc", &shorter),
        Err(DeltaError::ResultTooShort {
            produced: 3,
            declared: 4
        })
    );
    // Any instruction after the declared size is reached is too much.
    let trailing = encode(3, 3, &[Op::Copy(0, 3), Op::Insert(b"x".to_vec())]);
    assert_eq!(
        apply(b"abc", &trailing),
        Err(DeltaError::ResultTooLong { declared: 3 })
    );
}

#[test]
fn rejects_reserved_instruction() {
    let delta = [&encode(3, 3, &[])[..], &[0]].concat();
    assert_eq!(apply(b"abc", &delta), Err(DeltaError::ReservedInstruction));
}

#[test]
fn rejects_truncation_anywhere() {
    let base = b"0123456789";
    let delta = encode(
        10,
        14,
        &[
            Op::Copy(0x02, 0x03),
            Op::Insert(b"abcdef".to_vec()),
            Op::Copy(1, 5),
        ],
    );
    assert_eq!(apply(base, &delta).unwrap(), b"234abcdef12345");
    for cut in 0..delta.len() {
        let err = apply(base, &delta[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                DeltaError::Truncated | DeltaError::ResultTooShort { .. }
            ),
            "cut at {cut}: {err:?}"
        );
        let err = apply_chunked(base, &delta[..cut], 2).unwrap_err();
        assert!(
            matches!(
                err,
                DeltaError::Truncated | DeltaError::ResultTooShort { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
    assert_eq!(apply(base, b""), Err(DeltaError::Truncated));
}

#[test]
fn rejects_oversized_varints_without_overflow() {
    let mut delta = vec![0xff; 9];
    delta.push(0x01); // 64 bits exactly: fine as a value
    delta.push(0x00);
    assert_eq!(
        apply(b"", &delta),
        Err(DeltaError::BaseSizeMismatch {
            declared: u64::MAX,
            actual: 0
        })
    );
    let mut delta = vec![0xff; 9];
    delta.push(0x02); // bit 64
    assert_eq!(apply(b"", &delta), Err(DeltaError::SizeOverflow));
    let delta = vec![0x80; 20];
    assert_eq!(apply(b"", &delta), Err(DeltaError::SizeOverflow));
}

#[test]
fn huge_declared_result_does_not_allocate_it() {
    // Declares 2^62 bytes of result; must fail quickly without trying to reserve that.
    let mut delta = varint(3);
    delta.extend(varint(1 << 62));
    delta.extend_from_slice(&[0x90, 0x03]);
    assert_eq!(
        apply(b"abc", &delta),
        Err(DeltaError::ResultTooShort {
            produced: 3,
            declared: 1 << 62
        })
    );
}

#[test]
fn decoder_reports_header_and_progress() {
    let delta = encode(3, 6, &[Op::Copy(0, 3), Op::Insert(b"def".to_vec())]);
    let mut decoder = DeltaDecoder::new();
    let (used, step) = decoder.step(&delta).unwrap();
    assert_eq!(
        step,
        DeltaStep::Header(DeltaHeader {
            base_size: 3,
            result_size: 6
        })
    );
    assert_eq!(decoder.header().unwrap().result_size, 6);
    let (used2, step) = decoder.step(&delta[used..]).unwrap();
    assert_eq!(step, DeltaStep::Copy { offset: 0, len: 3 });
    assert_eq!(decoder.produced(), 3);
    // An insert split in two pieces by the caller's chunking.
    let rest = &delta[used + used2..];
    let (a, step) = decoder.step(&rest[..2]).unwrap();
    assert_eq!((a, step), (2, DeltaStep::Insert(b"d")));
    let (b, step) = decoder.step(&rest[2..]).unwrap();
    assert_eq!((b, step), (2, DeltaStep::Insert(b"ef")));
    assert_eq!(decoder.step(&[]).unwrap(), (0, DeltaStep::NeedInput));
    assert!(decoder.finish().is_ok());
}

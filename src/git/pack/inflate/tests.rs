use super::*;
use testkit::pack::zlib;

/// 200 KiB of text that compresses with matches both near and up to the whole window back.
fn sample() -> Vec<u8> {
    let mut out = Vec::new();
    let mut x: u32 = 7;
    while out.len() < 200 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(format!("line {} of {}\n", x % 997, (x >> 8) % 31).as_bytes());
    }
    out
}

/// A zlib stream holding `data` in one stored (uncompressed) block.
fn stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// Feeds `stream` to `inflater` in input pieces of `piece` bytes with `room` bytes of output at a time, until the
/// stream ends; returns the output and the input bytes left after the end.
fn inflate_in_pieces(
    inflater: &mut EntryInflater,
    stream: &[u8],
    piece: usize,
    room: usize,
) -> Result<(Vec<u8>, usize), InflateError> {
    let (mut out, mut buf, mut pos) = (Vec::new(), vec![0; room], 0);
    while !inflater.has_ended() {
        let end = stream.len().min(pos + piece);
        let step = inflater.inflate(&stream[pos..end], &mut buf)?;
        assert!(
            step.consumed > 0 || step.written > 0 || inflater.has_ended() || end == stream.len(),
            "no progress with input and room left"
        );
        if step.consumed == 0 && step.written == 0 && end == stream.len() && !inflater.has_ended() {
            return Err(InflateError::Zlib("truncated"));
        }
        pos += step.consumed;
        out.extend_from_slice(&buf[..step.written]);
    }
    Ok((out, stream.len() - pos))
}

#[test]
fn any_split_of_input_and_output_gives_the_same_bytes() {
    let data = sample();
    let stream = zlib(&data);
    let mut inflater = EntryInflater::new();
    for (piece, room) in [
        (1, 1),
        (1, 64 * 1024),
        (7, 13),
        (stream.len(), 1),
        (4096, 65_536),
    ] {
        inflater.reset(data.len() as u64);
        let (out, left) = inflate_in_pieces(&mut inflater, &stream, piece, room).unwrap();
        assert_eq!(
            (out.len(), left),
            (data.len(), 0),
            "pieces {piece}, room {room}"
        );
        assert!(out == data, "pieces {piece}, room {room}");
        assert_eq!(inflater.finish(false), Ok(()));
        let after = inflater.inflate(b"more", &mut [0; 8]).unwrap();
        assert_eq!(
            (after.consumed, after.written),
            (0, 0),
            "nothing after the end"
        );
    }
}

#[test]
fn whole_streams_of_every_block_kind_and_size() {
    let data = sample();
    let mut inflater = EntryInflater::new();
    for (stream, expected) in [
        (zlib(&data), &data[..]),
        (zlib(b""), &b""[..]),
        (stored(b"stored block"), &b"stored block"[..]),
        (stored(b""), &b""[..]),
    ] {
        let out = inflater
            .inflate_whole(&stream, expected.len() as u64)
            .unwrap();
        assert!(out == expected);
        assert!(inflater.has_ended());
    }
}

#[test]
fn a_stream_is_held_to_its_declared_size_and_its_end() {
    let data = b"twelve bytes";
    let stream = zlib(data);
    let mut inflater = EntryInflater::new();
    assert_eq!(
        inflater.inflate_whole(&stream, 11),
        Err(InflateError::TooLong { declared: 11 })
    );
    assert_eq!(
        inflater.inflate_whole(&stream, 0),
        Err(InflateError::TooLong { declared: 0 })
    );
    assert_eq!(
        inflater.inflate_whole(&stream, 13),
        Err(InflateError::TooShort {
            declared: 13,
            actual: 12
        })
    );
    assert_eq!(
        inflater.inflate_whole(&[&stream[..], b"x"].concat(), 12),
        Err(InflateError::TrailingBytes)
    );
    // Bytes after the end are left unconsumed by the streaming call too.
    inflater.reset(12);
    let (out, left) =
        inflate_in_pieces(&mut inflater, &[&stream[..], b"xyz"].concat(), 5, 64).unwrap();
    assert_eq!((&out[..], left), (&data[..], 3));
    for cut in [0, 1, 2, stream.len() - 4, stream.len() - 1] {
        assert_eq!(
            inflater.inflate_whole(&stream[..cut], 12),
            Err(InflateError::Zlib("truncated")),
            "cut at {cut}"
        );
        inflater.reset(12);
        let _ = inflater.inflate(&stream[..cut], &mut [0; 64]).unwrap();
        assert_eq!(inflater.finish(false), Err(InflateError::Zlib("truncated")));
    }
}

#[test]
fn corrupt_streams_are_rejected() {
    let good = zlib(b"some data, some data, some data");
    let corrupt = "invalid deflate stream or checksum";
    let mut bad_adler = good.clone();
    *bad_adler.last_mut().unwrap() ^= 1;
    // FDICT set (0x78 0x20 + check bits): a preset dictionary, which git never uses.
    let with_dictionary = [&[0x78, 0xbb, 0, 0, 0, 1][..], &good[2..]].concat();
    let bad_window = [&[0x88, 0x1c][..], &good[2..]].concat();
    let bad_header_check = [&[0x78, 0x9d][..], &good[2..]].concat();
    let stored_bad_length = {
        let mut s = stored(b"abc");
        s[5] ^= 1;
        s
    };
    let mut inflater = EntryInflater::new();
    for (name, stream) in [
        ("adler-32", bad_adler),
        ("dictionary", with_dictionary),
        ("window size", bad_window),
        ("header check", bad_header_check),
        ("stored length", stored_bad_length),
        ("not zlib", b"not zlib at all".to_vec()),
    ] {
        assert_eq!(
            inflater.inflate_whole(&stream, 31),
            Err(InflateError::Zlib(corrupt)),
            "{name}"
        );
    }
}

#[test]
fn reset_forgets_the_previous_stream_window() {
    // One fixed-Huffman block: a 3-byte match at distance 1 before any output, then the end of block.
    let too_far_back = [0x78, 0x01, 0x03, 0x02, 0x00, 0, 0, 0, 0];
    let mut inflater = EntryInflater::new();
    let fresh = inflater.inflate_whole(&too_far_back, 3);
    let data = sample();
    assert_eq!(
        inflater
            .inflate_whole(&zlib(&data), data.len() as u64)
            .map(|out| out == data),
        Ok(true)
    );
    assert_eq!(inflater.inflate_whole(&too_far_back, 3), fresh);
    assert_eq!(
        fresh,
        Err(InflateError::Zlib("invalid deflate stream or checksum"))
    );
}

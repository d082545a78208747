use super::*;

fn drain(decoder: &mut Decoder, into: &mut Vec<Packet>) {
    while let Some(packet) = decoder.next_packet().unwrap() {
        into.push(packet);
    }
}

fn data(payload: &[u8]) -> Packet {
    Packet::Data(Bytes::copy_from_slice(payload))
}

/// A stream with every packet kind, including an empty and a maximal data packet.
fn sample() -> (Vec<u8>, Vec<Packet>) {
    let big = vec![b'x'; MAX_DATA_LEN];
    let mut wire = Vec::new();
    write_data(&mut wire, b"hello\n").unwrap();
    wire.extend_from_slice(FLUSH);
    write_data(&mut wire, b"").unwrap();
    wire.extend_from_slice(b"0001");
    write_data(&mut wire, &big).unwrap();
    wire.extend_from_slice(b"0002");
    write_data(&mut wire, b"\x01pack").unwrap();
    let packets = vec![
        data(b"hello\n"),
        Packet::Flush,
        data(b""),
        Packet::Delimiter,
        data(&big),
        Packet::ResponseEnd,
        data(b"\x01pack"),
    ];
    (wire, packets)
}

#[test]
fn round_trip_in_one_chunk() {
    let (wire, expected) = sample();
    assert_eq!(&wire[..10], b"000ahello\n");
    let mut decoder = Decoder::new();
    decoder.push(&wire);
    let mut got = Vec::new();
    drain(&mut decoder, &mut got);
    assert_eq!(got, expected);
    assert!(decoder.is_empty());
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn one_byte_at_a_time_and_bounded() {
    let (wire, expected) = sample();
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    for byte in &wire {
        decoder.push(std::slice::from_ref(byte));
        drain(&mut decoder, &mut got);
        assert!(decoder.buffered() < MAX_PACKET_LEN);
    }
    assert_eq!(got, expected);
    assert!(decoder.is_empty());
}

#[test]
fn split_at_every_offset() {
    let mut wire = Vec::new();
    write_data(&mut wire, b"want abc\n").unwrap();
    wire.extend_from_slice(FLUSH);
    write_data(&mut wire, b"done\n").unwrap();
    let expected = vec![data(b"want abc\n"), Packet::Flush, data(b"done\n")];
    for split in 0..=wire.len() {
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        decoder.push(&wire[..split]);
        drain(&mut decoder, &mut got);
        decoder.push(&wire[split..]);
        drain(&mut decoder, &mut got);
        assert_eq!(got, expected, "split at {split}");
        assert!(decoder.is_empty());
    }
}

#[test]
fn accepts_upper_case_and_maximal_length() {
    let mut decoder = Decoder::new();
    decoder.push(b"000Ahello\n");
    assert_eq!(decoder.next_packet().unwrap(), Some(data(b"hello\n")));
    let mut wire = b"fff0".to_vec();
    wire.resize(MAX_PACKET_LEN, b'y');
    decoder.push(&wire);
    assert_eq!(decoder.next_packet().unwrap(), Some(data(&wire[4..])));
}

#[test]
fn rejects_invalid_lengths_persistently() {
    for (wire, error) in [
        (&b"00zz"[..], PktLineError::BadLengthHeader(*b"00zz")),
        (b"-001", PktLineError::BadLengthHeader(*b"-001")),
        (b"0003", PktLineError::InvalidLength(3)),
        (b"fff1", PktLineError::InvalidLength(65521)),
        (b"ffffdata", PktLineError::InvalidLength(65535)),
    ] {
        let mut decoder = Decoder::new();
        decoder.push(wire);
        assert_eq!(decoder.next_packet(), Err(error.clone()));
        assert_eq!(decoder.next_packet(), Err(error));
    }
    assert_eq!(
        PktLineError::BadLengthHeader(*b"0\n\x00z").to_string(),
        "invalid pkt-line length header \"0\\n\\x00z\": not four hexadecimal digits"
    );
}

#[test]
fn truncated_packets_wait_for_more_bytes() {
    let mut decoder = Decoder::new();
    decoder.push(b"00");
    assert_eq!(decoder.next_packet(), Ok(None));
    decoder.push(b"09don");
    assert_eq!(decoder.next_packet(), Ok(None));
    assert_eq!(decoder.buffered(), 7);
    assert!(!decoder.is_empty());
    // A huge declared length buffers nothing beyond what arrived.
    let mut decoder = Decoder::new();
    decoder.push(b"fff0abc");
    assert_eq!(decoder.next_packet(), Ok(None));
    assert_eq!(decoder.buffered(), 7);
}

#[test]
fn payloads_share_the_buffer() {
    let mut decoder = Decoder::new();
    decoder.push(b"0009abcde0009fghij");
    let Some(Packet::Data(first)) = decoder.next_packet().unwrap() else {
        panic!("expected data");
    };
    let Some(Packet::Data(second)) = decoder.next_packet().unwrap() else {
        panic!("expected data");
    };
    assert_eq!(first.as_ptr().wrapping_add(9), second.as_ptr());
}

#[test]
fn write_data_limits() {
    let mut out = Vec::new();
    assert_eq!(
        write_data(&mut out, &vec![0; MAX_DATA_LEN + 1]),
        Err(PktLineError::DataTooLong(65517))
    );
    assert!(out.is_empty());
    write_data(&mut out, &vec![0; MAX_DATA_LEN]).unwrap();
    assert_eq!(&out[..4], b"fff0");
    assert_eq!(out.len(), MAX_PACKET_LEN);
}

#[test]
fn demux_bands() {
    let band = |raw: &'static [u8]| demux(Bytes::from_static(raw));
    assert_eq!(
        band(b"\x01PACK"),
        Ok(Band::Data(Bytes::from_static(b"PACK")))
    );
    assert_eq!(
        band(b"\x0250%\r"),
        Ok(Band::Progress(Bytes::from_static(b"50%\r")))
    );
    assert_eq!(
        band(b"\x03fatal"),
        Ok(Band::Error(Bytes::from_static(b"fatal")))
    );
    assert_eq!(band(b"\x01"), Ok(Band::Data(Bytes::new())));
    assert_eq!(band(b""), Err(PktLineError::EmptySideBand));
    assert_eq!(band(b"\x04x"), Err(PktLineError::UnknownBand(4)));
    assert_eq!(band(b"\x00x"), Err(PktLineError::UnknownBand(0)));
}

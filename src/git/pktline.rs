//! Git's pkt-line framing and side-band demultiplexing, without I/O.
//!
//! Every message of the smart protocol is a sequence of pkt-lines: four hexadecimal digits giving the total length
//! (header included), then the payload. The lengths `0000` (flush), `0001` (delimiter) and `0002` (response end)
//! are special packets without payload. Pack data is carried in data packets whose first byte names a side band.
//! The [`Decoder`] is fed whatever chunks the network delivers and hands out whole packets as [`Bytes`] views of
//! its buffer, so payloads are never copied after they arrive.

use bytes::{Buf, Bytes, BytesMut};

/// Largest legal pkt-line, header included.
const MAX_PACKET_LEN: usize = 65520;

/// Largest payload of one data pkt-line.
const MAX_DATA_LEN: usize = MAX_PACKET_LEN - 4;

/// The flush packet, which ends a list of packets.
pub const FLUSH: &[u8; 4] = b"0000";

/// The delimiter packet, which separates the sections of a protocol v2 message.
pub const DELIMITER: &[u8; 4] = b"0001";

/// Malformed pkt-line framing or side-band data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktLineError {
    /// The four length bytes are not hexadecimal digits.
    #[error("invalid pkt-line length header \"{}\": not four hexadecimal digits", .0.escape_ascii())]
    BadLengthHeader([u8; 4]),
    /// The length is 3 (reserved) or larger than 65520.
    #[error("invalid pkt-line length {0}: must be 0, 1, 2 or 4 to 65520")]
    InvalidLength(usize),
    /// A payload too large for one pkt-line was to be written.
    #[error("cannot write {0} bytes in one pkt-line: at most 65516 fit")]
    DataTooLong(usize),
    /// A side-band packet without the band byte.
    #[error("empty side-band packet (no band number)")]
    EmptySideBand,
    /// A side-band packet for a band other than 1, 2 or 3.
    #[error("unknown side-band {0}")]
    UnknownBand(u8),
}

/// One decoded pkt-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A data packet's payload (possibly empty, for the rare `0004`).
    Data(Bytes),
    /// `0000`.
    Flush,
    /// `0001` (protocol v2 section separator).
    Delimiter,
    /// `0002` (protocol v2 end of response).
    ResponseEnd,
}

/// Incremental pkt-line decoder: [`push`](Decoder::push) bytes as they arrive, then call
/// [`next_packet`](Decoder::next_packet) until it returns `Ok(None)`.
///
/// Memory bound: the decoder keeps only bytes not yet returned as packets. A caller that drains
/// `next_packet` after every `push` therefore never has more than one incomplete packet (at most 65519 bytes)
/// plus the latest pushed chunk buffered. Returned payloads share the buffer's allocation, which stays alive
/// for as long as the caller keeps them.
///
/// A framing error is not consumed: once `next_packet` fails, it fails the same way on every later call.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed first.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, PktLineError> {
        let Some(header) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = parse_length(header)?;
        let packet = match len {
            0 => Packet::Flush,
            1 => Packet::Delimiter,
            2 => Packet::ResponseEnd,
            4..=MAX_PACKET_LEN if self.buf.len() < len => return Ok(None),
            4..=MAX_PACKET_LEN => {
                self.buf.advance(4);
                return Ok(Some(Packet::Data(self.buf.split_to(len - 4).freeze())));
            }
            _ => return Err(PktLineError::InvalidLength(len)),
        };
        self.buf.advance(4);
        Ok(Some(packet))
    }

    /// Number of bytes received but not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether no bytes are pending; at end of input, `false` means the stream stopped inside a packet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn parse_length(header: &[u8; 4]) -> Result<usize, PktLineError> {
    header.iter().try_fold(0usize, |len, &c| {
        let digit = char::from(c)
            .to_digit(16)
            .ok_or(PktLineError::BadLengthHeader(*header))?;
        Ok(len << 4 | digit as usize)
    })
}

/// Appends `data` to `out` as one data pkt-line.
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) -> Result<(), PktLineError> {
    if data.len() > MAX_DATA_LEN {
        return Err(PktLineError::DataTooLong(data.len()));
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = data.len() + 4;
    out.extend([12, 8, 4, 0].map(|shift| HEX[(len >> shift) & 0xf]));
    out.extend_from_slice(data);
    Ok(())
}

/// The payload of a side-band packet, by band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Band {
    /// Band 1: pack data.
    Data(Bytes),
    /// Band 2: progress messages for the user.
    Progress(Bytes),
    /// Band 3: a fatal error message; the remote gives up.
    Error(Bytes),
}

/// Splits a side-band data packet into its band and payload.
pub fn demux(mut data: Bytes) -> Result<Band, PktLineError> {
    let band = *data.first().ok_or(PktLineError::EmptySideBand)?;
    data.advance(1);
    match band {
        1 => Ok(Band::Data(data)),
        2 => Ok(Band::Progress(data)),
        3 => Ok(Band::Error(data)),
        other => Err(PktLineError::UnknownBand(other)),
    }
}

#[cfg(test)]
mod tests;

//! Git delta decoding and application, without I/O.
//!
//! A delta (the payload of an `OFS_DELTA`/`REF_DELTA` pack entry, once inflated) rebuilds one object from another:
//! two size varints (the base's size, then the result's size) followed by instructions. An instruction byte with
//! its high bit set is a *copy* (bits 0-3 say which of four little-endian offset bytes follow, bits 4-6 which of
//! three size bytes follow; a size of 0 means 0x10000); a byte 1..=127 *inserts* that many literal bytes that
//! follow it; 0 is reserved.
//!
//! [`DeltaDecoder`] is a resumable decoder fed the delta in chunks of any size: it yields the header and then one
//! instruction at a time, so the resolver can apply deltas to objects too big to hold whole. [`apply`] is built on
//! the same decoder for the common in-memory case. Both are strict: every copy is checked against the declared
//! base size, the output may never exceed the declared result size, and a delta that ends early (mid-instruction
//! or before producing the declared size) is an error. Nothing is ever allocated from a declared size alone.

use crate::git::varint::push_le128;

/// Why a delta is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta ended in its header or in the middle of an instruction.
    #[error("delta is truncated")]
    Truncated,
    /// A size varint in the header does not fit in 64 bits.
    #[error("delta header size does not fit in 64 bits")]
    SizeOverflow,
    /// The reserved instruction byte 0.
    #[error("delta uses the reserved instruction 0")]
    ReservedInstruction,
    /// The delta was made for a base of another size.
    #[error("delta expects a base of {declared} bytes, but the base has {actual}")]
    BaseSizeMismatch {
        /// Base size declared by the delta header.
        declared: u64,
        /// Size of the base actually supplied.
        actual: u64,
    },
    /// A copy instruction reads outside the base.
    #[error("delta copies {len} bytes at offset {offset} from a base of {base_size} bytes")]
    CopyOutOfRange {
        /// Start of the copied range in the base.
        offset: u64,
        /// Length of the copied range.
        len: u64,
        /// Size of the base.
        base_size: u64,
    },
    /// The instructions produce more than the declared result size.
    #[error("delta produces more than its declared result size of {declared} bytes")]
    ResultTooLong {
        /// Result size declared by the delta header.
        declared: u64,
    },
    /// The instructions end before producing the declared result size.
    #[error("delta produces {produced} bytes, but declares a result size of {declared}")]
    ResultTooShort {
        /// Bytes actually produced.
        produced: u64,
        /// Result size declared by the delta header.
        declared: u64,
    },
}

/// The two sizes at the start of every delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaHeader {
    /// Size of the object the delta applies to.
    pub base_size: u64,
    /// Size of the object the delta produces.
    pub result_size: u64,
}

/// One thing decoded by [`DeltaDecoder::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaStep<'a> {
    /// The header, always the first step of a delta.
    Header(DeltaHeader),
    /// Append `len` bytes of the base starting at `offset` (already checked to lie inside the declared base).
    Copy {
        /// Start of the range in the base.
        offset: u64,
        /// Length of the range (at least 1).
        len: u64,
    },
    /// Append these literal bytes. One insert instruction may arrive as several pieces when its data spans chunks.
    Insert(&'a [u8]),
    /// All of the input given was consumed; feed the next chunk (or call [`DeltaDecoder::finish`] at the end).
    NeedInput,
}

/// Where the decoder is inside the delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the base size varint.
    BaseSize { value: u64, shift: u32 },
    /// Reading the result size varint.
    ResultSize {
        base_size: u64,
        value: u64,
        shift: u32,
    },
    /// At an instruction boundary.
    Opcode,
    /// Reading the argument bytes of a copy instruction; `bit` is the next flag bit (0-6) to look at.
    CopyArgs {
        op: u8,
        bit: u8,
        offset: u64,
        len: u64,
    },
    /// Inside the literal data of an insert instruction.
    Insert { remaining: u8 },
}

/// Resumable delta decoder: feed it the delta in chunks, get the header and instructions back one by one.
///
/// Typical use: call [`step`](Self::step) on the unconsumed part of the current chunk until it returns
/// [`DeltaStep::NeedInput`], move on to the next chunk, and call [`finish`](Self::finish) once the delta's bytes are
/// exhausted. The decoder checks copies against the declared base size and the output against the declared result
/// size; checking that the declared base size matches the real base is the caller's job (the header tells it).
#[derive(Debug, Clone)]
pub struct DeltaDecoder {
    state: State,
    header: Option<DeltaHeader>,
    produced: u64,
}

impl Default for DeltaDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DeltaDecoder {
    /// A decoder at the start of a delta.
    pub fn new() -> Self {
        DeltaDecoder {
            state: State::BaseSize { value: 0, shift: 0 },
            header: None,
            produced: 0,
        }
    }

    /// The header, once decoded.
    pub fn header(&self) -> Option<DeltaHeader> {
        self.header
    }

    /// Bytes of output the instructions decoded so far produce.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Decodes the next header or instruction from `input`, returning how many bytes of `input` it consumed.
    ///
    /// Returns [`DeltaStep::NeedInput`] (having consumed all of `input`) when `input` holds no complete step. An
    /// insert yields at most `input.len()` bytes; the rest of it comes from later calls.
    pub fn step<'a>(&mut self, input: &'a [u8]) -> Result<(usize, DeltaStep<'a>), DeltaError> {
        let mut pos = 0;
        while let Some(&byte) = input.get(pos) {
            match self.state {
                State::BaseSize { value, shift } => {
                    pos += 1;
                    let value = push_le128(value, shift, byte).ok_or(DeltaError::SizeOverflow)?;
                    self.state = if byte & 0x80 != 0 {
                        State::BaseSize {
                            value,
                            shift: shift + 7,
                        }
                    } else {
                        State::ResultSize {
                            base_size: value,
                            value: 0,
                            shift: 0,
                        }
                    };
                }
                State::ResultSize {
                    base_size,
                    value,
                    shift,
                } => {
                    pos += 1;
                    let value = push_le128(value, shift, byte).ok_or(DeltaError::SizeOverflow)?;
                    if byte & 0x80 != 0 {
                        self.state = State::ResultSize {
                            base_size,
                            value,
                            shift: shift + 7,
                        };
                    } else {
                        let header = DeltaHeader {
                            base_size,
                            result_size: value,
                        };
                        self.header = Some(header);
                        self.state = State::Opcode;
                        return Ok((pos, DeltaStep::Header(header)));
                    }
                }
                State::Opcode => {
                    pos += 1;
                    self.state = match byte {
                        0 => return Err(DeltaError::ReservedInstruction),
                        1..=0x7f => {
                            self.grow(u64::from(byte))?;
                            State::Insert { remaining: byte }
                        }
                        _ => State::CopyArgs {
                            op: byte,
                            bit: 0,
                            offset: 0,
                            len: 0,
                        },
                    };
                }
                State::CopyArgs {
                    op,
                    bit,
                    offset,
                    len,
                } => {
                    // Skip flag bits that are clear; each set one consumes the next byte.
                    let mut bit = bit;
                    while bit < 7 && op & (1 << bit) == 0 {
                        bit += 1;
                    }
                    if bit < 7 {
                        pos += 1;
                        let (offset, len) = if bit < 4 {
                            (offset | u64::from(byte) << (8 * bit), len)
                        } else {
                            (offset, len | u64::from(byte) << (8 * (bit - 4)))
                        };
                        self.state = State::CopyArgs {
                            op,
                            bit: bit + 1,
                            offset,
                            len,
                        };
                    } else {
                        return self.finish_copy(offset, len).map(|step| (pos, step));
                    }
                }
                State::Insert { remaining } => {
                    let take = usize::from(remaining).min(input.len() - pos);
                    let data = &input[pos..pos + take];
                    // `take` <= `remaining` <= 127, so the cast is lossless.
                    let left = remaining - take as u8;
                    self.state = if left == 0 {
                        State::Opcode
                    } else {
                        State::Insert { remaining: left }
                    };
                    return Ok((pos + take, DeltaStep::Insert(data)));
                }
            }
        }
        // A copy whose last argument byte was the end of the input is complete without further bytes.
        if let State::CopyArgs {
            op,
            bit,
            offset,
            len,
        } = self.state
        {
            if (bit..7).all(|b| op & (1 << b) == 0) {
                return self.finish_copy(offset, len).map(|step| (pos, step));
            }
        }
        Ok((pos, DeltaStep::NeedInput))
    }

    /// Checks that the delta ended cleanly: at an instruction boundary, having produced exactly the declared size.
    pub fn finish(&self) -> Result<DeltaHeader, DeltaError> {
        let header = match (self.state, self.header) {
            (State::Opcode, Some(header)) => header,
            _ => return Err(DeltaError::Truncated),
        };
        if self.produced != header.result_size {
            return Err(DeltaError::ResultTooShort {
                produced: self.produced,
                declared: header.result_size,
            });
        }
        Ok(header)
    }

    fn finish_copy(&mut self, offset: u64, len: u64) -> Result<DeltaStep<'static>, DeltaError> {
        let len = if len == 0 { 0x10000 } else { len };
        let base_size = self.header.map_or(0, |h| h.base_size);
        if offset.checked_add(len).is_none_or(|end| end > base_size) {
            return Err(DeltaError::CopyOutOfRange {
                offset,
                len,
                base_size,
            });
        }
        self.grow(len)?;
        self.state = State::Opcode;
        Ok(DeltaStep::Copy { offset, len })
    }

    /// Accounts for `len` more output bytes, refusing to exceed the declared result size.
    fn grow(&mut self, len: u64) -> Result<(), DeltaError> {
        let declared = self.header.map_or(0, |h| h.result_size);
        match self.produced.checked_add(len) {
            Some(total) if total <= declared => {
                self.produced = total;
                Ok(())
            }
            _ => Err(DeltaError::ResultTooLong { declared }),
        }
    }
}

/// Applies a whole in-memory `delta` to `base`, returning the result.
///
/// The declared base size must equal `base.len()`, and the instructions must produce exactly the declared result
/// size. The output buffer starts at most `base.len() + delta.len()` bytes large (never the declared size alone)
/// and grows as instructions produce bytes; it can never exceed the declared result size.
pub fn apply(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut decoder = DeltaDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let (used, step) = decoder.step(&delta[pos..])?;
        pos += used;
        match step {
            DeltaStep::Header(header) => {
                let actual = base.len() as u64;
                if header.base_size != actual {
                    return Err(DeltaError::BaseSizeMismatch {
                        declared: header.base_size,
                        actual,
                    });
                }
                let bound = header
                    .result_size
                    .min(actual.saturating_add(delta.len() as u64));
                out.reserve(usize::try_from(bound).unwrap_or(0));
            }
            DeltaStep::Copy { offset, len } => {
                // The decoder checked the range against the declared base size, which equals `base.len()`.
                let bytes = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(offset + len).ok())
                    .and_then(|(start, end)| base.get(start..end))
                    .ok_or(DeltaError::CopyOutOfRange {
                        offset,
                        len,
                        base_size: base.len() as u64,
                    })?;
                out.extend_from_slice(bytes);
            }
            DeltaStep::Insert(bytes) => out.extend_from_slice(bytes),
            DeltaStep::NeedInput => break,
        }
    }
    decoder.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests;

//! Size-checked inflation of one pack entry's zlib stream.
//!
//! Every pack entry declares the size its data inflates to, and both passes over a pack hold the stream to it:
//! the first pass ([`crate::git::pack`]) to find where the stream ends while the pack arrives, the second
//! ([`crate::git::resolve`]) to read entries back, whole or in chunks. [`EntryInflater`] is fed the compressed
//! bytes in pieces of any size and refuses output beyond the declared size as soon as it appears, so a zlib bomb
//! declared small costs one output buffer, never more.

use flate2::{Decompress, FlushDecompress, Status};

/// zlib cannot expand data by more than about 1032:1; inflated buffers are never reserved beyond that.
const MAX_INFLATE_RATIO: u64 = 1032;

/// Why an entry's zlib stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The zlib stream is corrupt, truncated, or the decompressor cannot go on.
    #[error("corrupt zlib data ({0})")]
    Zlib(&'static str),
    /// The zlib stream ended before producing the size the entry header declares.
    #[error("inflates to {actual} bytes but its header declares {declared}")]
    TooShort {
        /// Size from the entry header.
        declared: u64,
        /// Bytes the stream actually produced.
        actual: u64,
    },
    /// The zlib stream produces more than the size the entry header declares.
    #[error("inflates to more than the {declared} bytes its header declares")]
    TooLong {
        /// Size from the entry header.
        declared: u64,
    },
    /// The zlib stream ends before the entry does (only known where the entry's end is known).
    #[error("zlib stream ends before the entry's last byte")]
    TrailingBytes,
}

/// Inflates one entry's zlib stream, checking that it yields exactly the declared size.
pub struct EntryInflater {
    /// Boxed: the decompressor's handle is large, and inflaters are moved about inside other state.
    state: Box<Decompress>,
    expected: u64,
    produced: u64,
    ended: bool,
}

/// What one [`EntryInflater::inflate`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflated {
    /// Input bytes used.
    pub consumed: usize,
    /// Output bytes written.
    pub written: usize,
}

impl Default for EntryInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl EntryInflater {
    /// An inflater for a stream that must inflate to nothing; [`reset`](Self::reset) it for a real one.
    pub fn new() -> Self {
        EntryInflater {
            state: Box::new(Decompress::new(true)),
            expected: 0,
            produced: 0,
            ended: false,
        }
    }

    /// Starts over for a stream that must inflate to `expected` bytes.
    pub fn reset(&mut self, expected: u64) {
        self.state.reset(true);
        self.expected = expected;
        self.produced = 0;
        self.ended = false;
    }

    /// The size the stream must inflate to.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// Whether the zlib stream has ended (its checksum verified).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Inflates from `input` into `out`. Using no input and writing nothing means the decompressor needs more
    /// input (or more room) to go on; after the end of the stream it does nothing.
    pub fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<Inflated, InflateError> {
        if self.ended {
            return Ok(Inflated {
                consumed: 0,
                written: 0,
            });
        }
        let (in_before, out_before) = (self.state.total_in(), self.state.total_out());
        let status = self
            .state
            .decompress(input, out, FlushDecompress::None)
            // Every failure is the input's: a corrupt or truncated deflate stream, a bad zlib header (a preset
            // dictionary included, which git never writes), or a wrong adler-32.
            .map_err(|_| InflateError::Zlib("invalid deflate stream or checksum"))?;
        // `BufError`: no progress possible without more input or more room.
        if status == Status::StreamEnd {
            self.ended = true;
        }
        // Both counts are bounded by the lengths of `input` and `out`, so they fit in `usize`.
        let consumed = (self.state.total_in() - in_before) as usize;
        let written = (self.state.total_out() - out_before) as usize;
        self.produced += written as u64;
        if self.produced > self.expected {
            return Err(InflateError::TooLong {
                declared: self.expected,
            });
        }
        Ok(Inflated { consumed, written })
    }

    /// Checks the end of the stream once its input is exhausted (`input_left`: entry bytes after it).
    pub fn finish(&self, input_left: bool) -> Result<(), InflateError> {
        if !self.ended {
            return Err(InflateError::Zlib("truncated"));
        }
        if input_left {
            return Err(InflateError::TrailingBytes);
        }
        if self.produced != self.expected {
            return Err(InflateError::TooShort {
                declared: self.expected,
                actual: self.produced,
            });
        }
        Ok(())
    }

    /// Inflates a whole zlib stream held in memory, which must end exactly where `data` does. The buffer starts
    /// no larger than zlib's maximum expansion of the real input and grows as output arrives; it never exceeds
    /// `expected + 1` bytes.
    pub fn inflate_whole(&mut self, data: &[u8], expected: u64) -> Result<Vec<u8>, InflateError> {
        self.reset(expected);
        let limit = expected.saturating_add(1);
        let first = limit.min(
            (data.len() as u64)
                .saturating_mul(MAX_INFLATE_RATIO)
                .saturating_add(64),
        );
        let mut out = vec![0; usize::try_from(first).unwrap_or(usize::MAX)];
        let (mut consumed, mut written) = (0, 0);
        while !self.ended {
            if written == out.len() {
                let grown = (out.len() as u64).saturating_mul(2).min(limit);
                out.resize(usize::try_from(grown).unwrap_or(usize::MAX), 0);
            }
            let step = self.inflate(&data[consumed..], &mut out[written..])?;
            consumed += step.consumed;
            written += step.written;
            if step.consumed == 0 && step.written == 0 && !self.ended {
                return Err(InflateError::Zlib("truncated"));
            }
        }
        self.finish(consumed < data.len())?;
        out.truncate(written);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;

//! An entry's header, read a byte at a time: the type and inflated size (a 3-bit type and 4 size bits, then
//! little-endian base-128 groups), then for an OFS delta the distance back to its base (most significant group
//! first, each continuation adding one) or for a REF delta the base's 20-byte id.

use super::PackError;
use crate::git::oid::{ObjectId, ObjectKind};
use crate::git::varint::push_le128;

/// What an entry header says about the base of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderBase {
    /// A whole object of this kind.
    None(ObjectKind),
    /// OFS_DELTA: the base starts this many bytes before the entry.
    Distance(u64),
    /// REF_DELTA: the base is the object with this id.
    Id(ObjectId),
}

/// A complete entry header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ParsedHeader {
    /// The inflated size of the entry's data.
    pub(super) size: u64,
    pub(super) base: HeaderBase,
}

/// Which part of an entry header comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum HeaderStage {
    /// The first byte: type and low size bits.
    #[default]
    First,
    /// Further size bytes.
    Size,
    /// The OFS_DELTA base distance.
    Distance,
    /// The REF_DELTA base id.
    BaseId,
}

/// Byte-at-a-time parser for an entry's type/size header and delta base reference.
#[derive(Debug, Clone, Default)]
pub(super) struct EntryHeaderParser {
    stage: HeaderStage,
    kind: u8,
    size: u64,
    shift: u32,
    distance: u64,
    distance_len: u32,
    base: [u8; 20],
    base_len: usize,
}

impl EntryHeaderParser {
    /// Reads header bytes from `data`; returns how many it used and the header once complete.
    pub(super) fn push(
        &mut self,
        data: &[u8],
        offset: u64,
    ) -> Result<(usize, Option<ParsedHeader>), PackError> {
        for (i, &byte) in data.iter().enumerate() {
            if let Some(parsed) = self.push_byte(byte, offset)? {
                return Ok((i + 1, Some(parsed)));
            }
        }
        Ok((data.len(), None))
    }

    fn push_byte(&mut self, byte: u8, offset: u64) -> Result<Option<ParsedHeader>, PackError> {
        let more = byte & 0x80 != 0;
        match self.stage {
            HeaderStage::First => {
                self.kind = (byte >> 4) & 7;
                if !matches!(self.kind, 1..=4 | 6 | 7) {
                    return Err(PackError::InvalidType {
                        offset,
                        kind: self.kind,
                    });
                }
                self.size = u64::from(byte & 0x0f);
                self.shift = 4;
                if more {
                    self.stage = HeaderStage::Size;
                    return Ok(None);
                }
                Ok(self.after_size())
            }
            HeaderStage::Size => {
                self.size = push_le128(self.size, self.shift, byte)
                    .ok_or(PackError::SizeOverflow { offset })?;
                self.shift += 7;
                if more {
                    return Ok(None);
                }
                Ok(self.after_size())
            }
            HeaderStage::Distance => {
                // Git's encoding: each continuation adds one before shifting, so no number has two spellings.
                let group = u64::from(byte & 0x7f);
                if self.distance_len == 0 {
                    self.distance = group;
                } else {
                    self.distance = match self.distance.checked_add(1) {
                        Some(d) if d >> 57 == 0 => (d << 7) | group,
                        _ => return Err(PackError::BaseDistanceOverflow { offset }),
                    };
                }
                self.distance_len += 1;
                if more {
                    return Ok(None);
                }
                Ok(Some(ParsedHeader {
                    size: self.size,
                    base: HeaderBase::Distance(self.distance),
                }))
            }
            HeaderStage::BaseId => {
                self.base[self.base_len] = byte;
                self.base_len += 1;
                if self.base_len < self.base.len() {
                    return Ok(None);
                }
                Ok(Some(ParsedHeader {
                    size: self.size,
                    base: HeaderBase::Id(ObjectId(self.base)),
                }))
            }
        }
    }

    /// The size is complete: the header ends here for whole objects, a base reference follows for deltas.
    fn after_size(&mut self) -> Option<ParsedHeader> {
        match self.kind {
            6 => {
                self.stage = HeaderStage::Distance;
                None
            }
            7 => {
                self.stage = HeaderStage::BaseId;
                None
            }
            kind => ObjectKind::from_pack_type(kind).map(|kind| ParsedHeader {
                size: self.size,
                base: HeaderBase::None(kind),
            }),
        }
    }
}

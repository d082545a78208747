//! The links of one object: the ids its content names, which must exist for the object to be readable.
//!
//! A commit links to its tree and its parents (the `tree` line and the `parent` lines that follow it, at the
//! start of its header), a tree to each entry's object except gitlinks (mode `160000`: a submodule's commit, an
//! object of another repository), an annotated tag to its target (the `object` line that starts it); a blob
//! links to nothing. This is what git's connectivity check after a fetch walks.
//!
//! [`LinkParser`] reads an object's content in chunks of any size, so objects streamed through delta resolution
//! are read without being held whole. Its memory is a few dozen bytes: it keeps at most one header line prefix or
//! one tree entry's mode and id, never a name or a whole line. Content that cannot be the object it claims to be
//! (a commit without its `tree` line, a tree entry cut short) is an error, as it is for git.
//!
//! A tree's parser can also watch for one regular file by name ([`LinkParser::watching`]): it then compares each
//! entry's name as it passes, and keeps the id of the entry that matches (how the `.lfsconfig` at the default
//! branch's tip is found while the pack's objects are hashed, without reading the tree again).

use crate::git::oid::{ObjectId, ObjectKind};

/// Why an object's content cannot be read for its links.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A commit that does not start with `tree <id>`, or a tag that does not start with `object <id>`.
    #[error("it does not start with a \"{0} <id>\" line")]
    MissingHeader(&'static str),
    /// A `tree`, `parent` or `object` line whose id is not 40 hexadecimal digits.
    #[error("its \"{0}\" line does not hold an object id")]
    BadHeaderId(&'static str),
    /// A tree entry whose mode is empty, too long or not octal.
    #[error("a tree entry has an invalid mode")]
    BadMode,
    /// A tree that ends inside an entry.
    #[error("its last tree entry is truncated")]
    TruncatedEntry,
}

/// Longest header line read whole: `parent ` and `object ` (7 bytes) plus 40 hex digits.
const HEADER_LINE: usize = 47;
/// Most digits of a tree entry's mode (git writes at most 6).
const MAX_MODE_DIGITS: u8 = 7;
/// The mode of a gitlink (a submodule's commit).
const GITLINK_MODE: u32 = 0o160000;

/// Where the parser is in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In a commit or tag header: the current line is `len` bytes long so far, of which `line` keeps the first
    /// ones (a line longer than any link line is not kept whole); `lines` counts the complete lines before it.
    Header {
        line: [u8; HEADER_LINE],
        len: usize,
        lines: u32,
    },
    /// Past the links of a commit or tag: the rest is not read.
    Done,
    /// In a tree entry's mode (`digits` read so far).
    Mode { mode: u32, digits: u8 },
    /// In a tree entry's name; `matched` is how many bytes of it match the watched name so far (`None` once
    /// it cannot be that name, or is not a regular file).
    Name { mode: u32, matched: Option<usize> },
    /// In a tree entry's 20-byte id; `named` when the entry is the watched file.
    Id {
        mode: u32,
        id: [u8; 20],
        len: usize,
        named: bool,
    },
    /// A blob: no links.
    Blob,
}

/// Reads the links of one object from its content, fed in chunks (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParser {
    kind: ObjectKind,
    state: State,
    /// The name of the regular file a tree's parser watches for (empty: none).
    watch: &'static [u8],
    /// The watched file's id, once its entry has passed.
    watched: Option<ObjectId>,
}

/// Modes of a tree entry that is a regular file (`100644`, or `100755` executable), as 6 octal digits.
const FILE_MODES: [u32; 2] = [0o100644, 0o100755];
const FILE_MODE_DIGITS: u8 = 6;

impl LinkParser {
    /// A parser for the content of an object of `kind`.
    pub fn new(kind: ObjectKind) -> Self {
        let state = match kind {
            ObjectKind::Commit | ObjectKind::Tag => State::Header {
                line: [0; HEADER_LINE],
                len: 0,
                lines: 0,
            },
            ObjectKind::Tree => State::Mode { mode: 0, digits: 0 },
            ObjectKind::Blob => State::Blob,
        };
        LinkParser {
            kind,
            state,
            watch: &[],
            watched: None,
        }
    }

    /// This parser, keeping the id of the regular file `name` if the object is a tree that has one
    /// ([`watched`](Self::watched)). `name` is a whole entry name.
    pub fn watching(mut self, name: &'static [u8]) -> Self {
        if self.kind == ObjectKind::Tree && !name.is_empty() {
            self.watch = name;
        }
        self
    }

    /// The id of the watched file (see [`watching`](Self::watching)), once its whole entry was read.
    pub fn watched(&self) -> Option<ObjectId> {
        self.watched
    }

    /// Whether objects of `kind` have links at all.
    pub fn has_links(kind: ObjectKind) -> bool {
        kind != ObjectKind::Blob
    }

    /// Reads the next bytes of the content, handing each link found to `link`.
    pub fn update(
        &mut self,
        mut bytes: &[u8],
        link: &mut impl FnMut(ObjectId),
    ) -> Result<(), LinkError> {
        while !bytes.is_empty() {
            let used = match &mut self.state {
                State::Blob | State::Done => return Ok(()),
                State::Header { line, len, lines } => {
                    let end = bytes.iter().position(|&b| b == b'\n');
                    let piece = &bytes[..end.unwrap_or(bytes.len())];
                    let kept = (*len).min(HEADER_LINE);
                    let take = piece.len().min(HEADER_LINE - kept);
                    line[kept..kept + take].copy_from_slice(&piece[..take]);
                    *len = len.saturating_add(piece.len());
                    let Some(end) = end else {
                        return Ok(());
                    };
                    let more = header_line(self.kind, *lines, line, *len, link)?;
                    self.state = if more {
                        State::Header {
                            line: [0; HEADER_LINE],
                            len: 0,
                            lines: *lines + 1,
                        }
                    } else {
                        State::Done
                    };
                    end + 1
                }
                State::Mode { mode, digits } => {
                    let byte = bytes[0];
                    match byte {
                        b' ' if *digits > 0 => {
                            let file = *digits == FILE_MODE_DIGITS && FILE_MODES.contains(mode);
                            let candidate =
                                file && !self.watch.is_empty() && self.watched.is_none();
                            self.state = State::Name {
                                mode: *mode,
                                matched: candidate.then_some(0),
                            };
                        }
                        b'0'..=b'7' if *digits < MAX_MODE_DIGITS => {
                            *mode = *mode * 8 + u32::from(byte - b'0');
                            *digits += 1;
                        }
                        _ => return Err(LinkError::BadMode),
                    }
                    1
                }
                State::Name { mode, matched } => {
                    let nul = bytes.iter().position(|&b| b == 0);
                    let piece = &bytes[..nul.unwrap_or(bytes.len())];
                    *matched = matched.and_then(|done| match_more(self.watch, done, piece));
                    match nul {
                        Some(nul) => {
                            self.state = State::Id {
                                mode: *mode,
                                id: [0; 20],
                                len: 0,
                                named: *matched == Some(self.watch.len()),
                            };
                            nul + 1
                        }
                        None => bytes.len(),
                    }
                }
                State::Id {
                    mode,
                    id,
                    len,
                    named,
                } => {
                    let take = bytes.len().min(20 - *len);
                    id[*len..*len + take].copy_from_slice(&bytes[..take]);
                    *len += take;
                    if *len == 20 {
                        if *mode != GITLINK_MODE {
                            link(ObjectId(*id));
                        }
                        if *named {
                            self.watched = Some(ObjectId(*id));
                        }
                        self.state = State::Mode { mode: 0, digits: 0 };
                    }
                    take
                }
            };
            bytes = &bytes[used..];
        }
        Ok(())
    }

    /// Checks, once the whole content was read, that it held every link it must.
    pub fn finish(&self, link: &mut impl FnMut(ObjectId)) -> Result<(), LinkError> {
        match &self.state {
            State::Blob | State::Done | State::Mode { digits: 0, .. } => Ok(()),
            // A header without a final newline: its last line still counts.
            State::Header { line, len, lines } => {
                header_line(self.kind, *lines, line, *len, link).map(|_| ())
            }
            State::Mode { .. } | State::Name { .. } | State::Id { .. } => {
                Err(LinkError::TruncatedEntry)
            }
        }
    }
}

/// Reads complete header line number `index` of a commit or tag, `len` bytes long without its newline, of which
/// `kept` holds the first; returns whether later lines may still hold links.
fn header_line(
    kind: ObjectKind,
    index: u32,
    kept: &[u8; HEADER_LINE],
    len: usize,
    link: &mut impl FnMut(ObjectId),
) -> Result<bool, LinkError> {
    let line = &kept[..len.min(HEADER_LINE)];
    let (first, more): (&'static str, Option<&'static str>) = match kind {
        ObjectKind::Commit => ("tree", Some("parent")),
        _ => ("object", None),
    };
    let field = if index == 0 {
        first
    } else {
        match more {
            Some(name) if starts_with_field(line, name) => name,
            _ => return Ok(false),
        }
    };
    if !starts_with_field(line, field) {
        return Err(LinkError::MissingHeader(first));
    }
    let id = Some(&line[field.len() + 1..])
        .filter(|_| len <= HEADER_LINE)
        .and_then(|hex| ObjectId::from_hex(hex).ok())
        .ok_or(LinkError::BadHeaderId(field))?;
    link(id);
    Ok(more.is_some())
}

/// How many bytes of `name` match once `piece` follows the `done` bytes that matched before; `None` if they
/// cannot be `name` (too long, or different).
fn match_more(name: &[u8], done: usize, piece: &[u8]) -> Option<usize> {
    let end = done
        .checked_add(piece.len())
        .filter(|&end| end <= name.len())?;
    (name[done..end] == *piece).then_some(end)
}

/// Whether `line` starts with `name` and a space.
fn starts_with_field(line: &[u8], name: &str) -> bool {
    line.strip_prefix(name.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b' '))
}

#[cfg(test)]
mod tests;

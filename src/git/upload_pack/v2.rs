//! Protocol v2 of the fetch side (`Git-Protocol: version=2`), without I/O.
//!
//! The client asks for v2 with the `Git-Protocol` header on every request. A server that speaks it answers
//! `GET info/refs` with a capability advertisement (`version 2`, then `ls-refs`, `fetch`, `agent=...`) instead of
//! refs ([`parse_discovery`]); one that does not answers with its v0 advertisement, which is used as it is, so
//! falling back costs no request. With v2 the refs come from an `ls-refs` command ([`build_ls_refs_request`],
//! [`parse_ls_refs`]) that sends `ref-prefix` lines, so the server leaves out the refs that are not wanted
//! (thousands of `refs/pull/*` on a busy host), and the pack from a `fetch` command ([`build_fetch_request`]),
//! whose response is a list of sections decoded by [`ResponseDecoder`](super::ResponseDecoder) once created for
//! [`Protocol::V2`] (`preamble_packet` handles the sections before `packfile`).
//!
//! Requests never ask for `thin-pack` (mirrored packs must be self-contained), `shallow`, `want-ref` or
//! `packfile-uris`, so a response carrying `shallow-info`, `wanted-refs` or `packfile-uris` is refused.

use super::{
    shown_ref_name, split_once_byte, strip_lf, untrusted, valid_ref_name, Advertisement,
    AdvertisementPackets, Protocol, ProtocolError, ResponseEvent, MAX_MESSAGE_CHARS,
};
use crate::git::oid::ObjectId;
use crate::git::pktline::{self, Packet};
use crate::git::refs::Ref;
use std::collections::HashSet;

/// The `Git-Protocol` header value that asks a server for protocol v2.
pub const GIT_PROTOCOL_HEADER_VALUE: &str = "version=2";

/// What a server answered to `GET info/refs?service=git-upload-pack` sent with `Git-Protocol: version=2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// A v0/v1 advertisement: the server does not speak v2 (or ignored the header); its refs are all here.
    V0(Advertisement),
    /// A v2 capability advertisement: an [`Advertisement`] with the server's capabilities and no refs yet
    /// (protocol [`Protocol::V2`]); [`parse_ls_refs`] adds them.
    V2(Advertisement),
}

/// Parses the body of `GET info/refs` sent with `Git-Protocol: version=2`: a v2 capability advertisement, or
/// else a v0/v1 advertisement ([`parse_advertisement`](super::parse_advertisement)).
///
/// A v2 server must offer the `ls-refs` and `fetch` commands and the sha1 object format (or none).
pub fn parse_discovery(body: &[u8]) -> Result<Discovery, ProtocolError> {
    let mut packets = AdvertisementPackets::new(body);
    let mut line = packets.next_data()?;
    if line
        .as_deref()
        .is_some_and(|line| line.starts_with(b"# service="))
    {
        // The service line and any header packets up to a flush; parse_advertisement checks them on the v0 path.
        while packets.next_data()?.is_some() {}
        line = packets.next_data()?;
    }
    if line.as_deref().map(strip_lf) != Some(b"version 2") {
        return super::parse_advertisement(body).map(Discovery::V0);
    }
    let mut capabilities = Vec::new();
    while let Some(raw) = packets.next_data()? {
        let capability = strip_lf(&raw);
        let key = split_once_byte(capability, b'=').map_or(capability, |(key, _)| key);
        let valid_key = !key.is_empty()
            && key
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        if !valid_key || capability.iter().any(u8::is_ascii_control) {
            return Err(packets.error(&format!(
                "invalid protocol v2 capability \"{}\"",
                untrusted(capability, MAX_MESSAGE_CHARS)
            )));
        }
        capabilities.push(String::from_utf8_lossy(capability).into_owned());
    }
    if !packets.decoder.is_empty() {
        return Err(packets.error("data after the final flush"));
    }
    let server = Advertisement {
        capabilities,
        protocol: Protocol::V2,
        ..Advertisement::default()
    };
    for command in ["ls-refs", "fetch"] {
        if !server.has_capability(command) {
            return Err(packets.error(&format!(
                "the protocol v2 server offers no `{command}` command"
            )));
        }
    }
    object_format(&server)?;
    Ok(Discovery::V2(server))
}

/// The `object-format=sha1` line to send, if the server advertised the capability; an error for another hash.
fn object_format(server: &Advertisement) -> Result<Option<&'static str>, ProtocolError> {
    match server.capability_value("object-format") {
        None => Ok(None),
        Some("sha1") => Ok(Some("object-format=sha1\n")),
        Some(other) => Err(ProtocolError::UnsupportedObjectFormat(other.to_owned())),
    }
}

/// The start of a v2 command request: `command=<name>`, the capabilities the server takes (`agent` when it
/// advertises one, `object-format`), and the delimiter before the command's arguments.
fn command_request(
    server: &Advertisement,
    command: &str,
    agent: &str,
) -> Result<Vec<u8>, ProtocolError> {
    if agent.is_empty() || !agent.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProtocolError::InvalidCapability(format!("agent={agent}")));
    }
    let mut out = Vec::new();
    pktline::write_data(&mut out, format!("command={command}\n").as_bytes())?;
    if server.has_capability("agent") {
        pktline::write_data(&mut out, format!("agent={agent}\n").as_bytes())?;
    }
    if let Some(line) = object_format(server)? {
        pktline::write_data(&mut out, line.as_bytes())?;
    }
    out.extend_from_slice(pktline::DELIMITER);
    Ok(out)
}

/// Builds the body of the `ls-refs` command: symbolic ref targets and peeled tags wanted, `HEAD` and every ref
/// under one of `prefixes` (each non-empty, without control characters or spaces).
pub fn build_ls_refs_request(
    server: &Advertisement,
    agent: &str,
    prefixes: &[String],
) -> Result<Vec<u8>, ProtocolError> {
    if let Some(bad) = prefixes
        .iter()
        .find(|prefix| prefix.is_empty() || prefix.chars().any(|c| c.is_control() || c == ' '))
    {
        return Err(ProtocolError::InvalidRefPrefix(untrusted(
            bad.as_bytes(),
            MAX_MESSAGE_CHARS,
        )));
    }
    let mut out = command_request(server, "ls-refs", agent)?;
    for argument in ["symrefs\n", "peel\n", "ref-prefix HEAD\n"] {
        pktline::write_data(&mut out, argument.as_bytes())?;
    }
    for prefix in prefixes {
        pktline::write_data(&mut out, format!("ref-prefix {prefix}\n").as_bytes())?;
    }
    out.extend_from_slice(pktline::FLUSH);
    Ok(out)
}

/// Parses the `ls-refs` response (`<id> <name>[ symref-target:<ref>][ peeled:<id>]` lines, then a flush) into
/// the refs of `server`, the capability advertisement of [`Discovery::V2`]. Names are checked as in a v0
/// advertisement: one git could not store is left out and listed in [`Advertisement::skipped`]; attributes other
/// than `symref-target` and `peeled` are ignored, as git ignores them.
pub fn parse_ls_refs(body: &[u8], server: Advertisement) -> Result<Advertisement, ProtocolError> {
    let mut packets = AdvertisementPackets::new(body);
    let mut advertisement = server;
    let mut names = HashSet::new();
    while let Some(raw) = packets.next_data()? {
        let line = strip_lf(&raw);
        let mut fields = line.split(|&b| b == b' ');
        let oid = fields.next().and_then(|hex| ObjectId::from_hex(hex).ok());
        let (Some(oid), Some(name)) = (oid, fields.next()) else {
            return Err(packets.error(&format!(
                "expected \"<object id> <ref name>\", got \"{}\"",
                untrusted(line, MAX_MESSAGE_CHARS)
            )));
        };
        let mut symref_target = None;
        let mut peeled = None;
        for attribute in fields {
            if let Some(target) = attribute.strip_prefix(b"symref-target:") {
                symref_target = Some(target);
            } else if let Some(hex) = attribute.strip_prefix(b"peeled:") {
                let id = ObjectId::from_hex(hex).map_err(|_| {
                    packets.error(&format!(
                        "invalid peeled object id \"{}\"",
                        untrusted(hex, MAX_MESSAGE_CHARS)
                    ))
                })?;
                peeled = Some(id);
            }
        }
        if name == b"HEAD" {
            if advertisement.head.replace(oid).is_some() {
                return Err(ProtocolError::DuplicateRef("HEAD".into()));
            }
            if let Some(target) = symref_target {
                match valid_ref_name(target) {
                    Ok(target) => advertisement.head_symref = Some(target),
                    Err(_) => advertisement
                        .skipped
                        .push(format!("symref=HEAD:{}", shown_ref_name(target))),
                }
            }
            continue;
        }
        let Ok(name) = valid_ref_name(name) else {
            advertisement.skipped.push(shown_ref_name(name));
            continue;
        };
        if !names.insert(name.clone()) {
            return Err(ProtocolError::DuplicateRef(name));
        }
        advertisement.refs.push(Ref { name, oid, peeled });
    }
    if !packets.decoder.is_empty() {
        return Err(packets.error("data after the final flush"));
    }
    Ok(advertisement)
}

/// Builds the body of the `fetch` command: `ofs-delta` when offered, `no-progress`, one `want` per distinct id,
/// one `have` per id, then `done` (so the server answers with the pack at once, without acknowledgments).
pub fn build_fetch_request(
    server: &Advertisement,
    agent: &str,
    wants: &[ObjectId],
    haves: &[ObjectId],
) -> Result<Vec<u8>, ProtocolError> {
    if wants.is_empty() {
        return Err(ProtocolError::NoWants);
    }
    let mut out = command_request(server, "fetch", agent)?;
    // v2 servers always take these two arguments (gitprotocol-v2: "fetch").
    for argument in ["ofs-delta\n", "no-progress\n"] {
        pktline::write_data(&mut out, argument.as_bytes())?;
    }
    let mut seen = HashSet::new();
    for want in wants.iter().filter(|want| seen.insert(**want)) {
        pktline::write_data(&mut out, format!("want {want}\n").as_bytes())?;
    }
    for have in haves {
        pktline::write_data(&mut out, format!("have {have}\n").as_bytes())?;
    }
    pktline::write_data(&mut out, b"done\n")?;
    out.extend_from_slice(pktline::FLUSH);
    Ok(out)
}

/// Where a v2 fetch response is before its `packfile` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Preamble {
    /// Expecting a section header.
    SectionHeader,
    /// Inside the `acknowledgments` section.
    Acknowledgments,
}

/// What one packet of the preamble did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PreambleStep {
    /// Nothing to report (a section header or delimiter).
    Nothing,
    /// An acknowledgment line.
    Event(ResponseEvent),
    /// The `packfile` header: side-band packets follow, up to the final flush.
    Packfile,
}

/// Advances a v2 fetch response's preamble by one packet (`ERR` lines are handled by the caller).
pub(super) fn preamble_packet(
    stage: &mut Preamble,
    packet: Packet,
) -> Result<PreambleStep, ProtocolError> {
    let fail = |reason: String| Err(ProtocolError::Response(reason));
    match (*stage, packet) {
        (Preamble::SectionHeader, Packet::Data(data)) => match strip_lf(&data) {
            b"packfile" => Ok(PreambleStep::Packfile),
            b"acknowledgments" => {
                *stage = Preamble::Acknowledgments;
                Ok(PreambleStep::Nothing)
            }
            b"shallow-info" => Err(ProtocolError::ShallowResponse("shallow-info".to_owned())),
            section @ (b"wanted-refs" | b"packfile-uris") => fail(format!(
                "section \"{}\" that this client never asks for",
                untrusted(section, MAX_MESSAGE_CHARS)
            )),
            other => fail(format!(
                "unknown section \"{}\"",
                untrusted(other, MAX_MESSAGE_CHARS)
            )),
        },
        (Preamble::Acknowledgments, Packet::Data(data)) => {
            let line = strip_lf(&data);
            if line == b"NAK" || line == b"ready" || line.starts_with(b"ACK ") {
                Ok(PreambleStep::Event(ResponseEvent::Acknowledgement(
                    String::from_utf8_lossy(line).into_owned(),
                )))
            } else {
                fail(format!(
                    "unexpected line in the acknowledgments section: \"{}\"",
                    untrusted(line, MAX_MESSAGE_CHARS)
                ))
            }
        }
        (Preamble::Acknowledgments, Packet::Delimiter) => {
            *stage = Preamble::SectionHeader;
            Ok(PreambleStep::Nothing)
        }
        (Preamble::Acknowledgments, Packet::Flush) => fail(
            "the response ended after the acknowledgments, without the packfile section asked for with `done`"
                .to_owned(),
        ),
        (Preamble::SectionHeader, Packet::Flush) => {
            fail("flush packet before any section".to_owned())
        }
        (_, Packet::Delimiter | Packet::ResponseEnd) => {
            fail("delimiter or response-end packet where a section header belongs".to_owned())
        }
    }
}

#[cfg(test)]
mod tests;

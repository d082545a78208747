//! Discovering the source's refs: the advertisement, and with protocol v2 the `ls-refs` command that lets the
//! server leave out what the options do not select.
//!
//! When the options select only some refs ([`MirrorOptions::ref_prefixes`] narrower than `refs/`), the client asks
//! the server for protocol v2. A v2 server answers `GET info/refs` with its capabilities, and the refs come from
//! `ls-refs` with one `ref-prefix` per prefix (plus `HEAD`), so refs such as thousands of `refs/pull/*` never cross
//! the network. A server that does not speak v2 answers with its whole v0 advertisement, which is used as it is:
//! falling back costs nothing. When every ref is wanted, v2 would only add the `ls-refs` round trip (a no-op run
//! would make two requests instead of one), so the client stays with v0. Either way the report counts the bytes
//! the refs took ([`RepoReport::advertisement_bytes`](crate::RepoReport::advertisement_bytes)).

use bytes::Bytes;
use url::Url;

use super::{MirrorError, Run, AGENT};
use crate::git::upload_pack::v2::{self, Discovery};
use crate::git::upload_pack::Advertisement;
use crate::options::MirrorOptions;
use crate::upstream::RepoEndpoint;

/// Whether the source client should ask for protocol v2: only when the options leave some refs out, as that is
/// what v2's `ref-prefix` saves.
pub(super) fn wants_protocol_v2(options: &MirrorOptions) -> bool {
    !options.ref_prefixes.iter().any(|prefix| prefix == "refs/")
}

impl Run<'_> {
    /// The source's refs and capabilities, and where its repository turned out to be.
    pub(super) async fn discover(
        &mut self,
        url: &Url,
    ) -> Result<(RepoEndpoint, Advertisement), MirrorError> {
        let (endpoint, body) = self.client.advertisement(url).await?;
        self.report.advertisement_bytes = body.len() as u64;
        let advertisement = match v2::parse_discovery(&body)? {
            Discovery::V0(advertisement) => advertisement,
            Discovery::V2(server) => {
                let request =
                    v2::build_ls_refs_request(&server, AGENT, &self.options.ref_prefixes)?;
                let refs = self.client.ls_refs(&endpoint, Bytes::from(request)).await?;
                self.report.advertisement_bytes += refs.len() as u64;
                v2::parse_ls_refs(&refs, server)?
            }
        };
        tracing::debug!(
            source = %self.report.source,
            protocol = ?advertisement.protocol,
            refs = advertisement.refs.len(),
            bytes = self.report.advertisement_bytes,
            "refs discovered"
        );
        Ok((endpoint, advertisement))
    }
}

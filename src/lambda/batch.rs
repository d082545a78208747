//! Running the requests of one event and shaping the answer.
//!
//! Mappings are grouped by equal options and token secret and duplicate mappings are dropped, so each group is one
//! mirror call and an invocation never mirrors the same mapping twice at once ([`Plan`]). A group's token is read
//! from Secrets Manager just before it runs (`tokens.rs`); if that fails, its mappings fail with the reason and
//! the other groups run. Every mapping's report is also logged as an EMF metrics record (`metrics.rs`). Events
//! other than SQS run all or
//! nothing: every request's options must resolve before any runs, and one failed mapping fails the invocation
//! with the JSON summary of all. An SQS batch runs message by message in effect: a message whose body was
//! malformed, whose options do not fit, or with a failed mapping is listed in `batchItemFailures` so that only it
//! is retried.

use aws_lambda_events::sqs::SqsBatchResponse;
use serde_json::Value;
use tracing::{info, warn};

use super::aws::Services;
use super::limits::{resolve_options, Limits};
use super::metrics;
use super::tokens::TokenCache;
use super::{EventError, HandlerError, Mirror, Request, SqsItem};
use crate::mirror::failed_report;
use crate::options::{Mapping, MirrorOptions, Overrides};
use crate::report::RepoReport;

/// Mappings grouped by equal options and token secret, duplicate mappings merged: each group is one
/// [`Mirror::mirror`] call, and an invocation never mirrors the same mapping twice at once.
struct Plan {
    groups: Vec<Group>,
    /// Per request, per mapping: the mapping's group and its index in that group.
    slots: Vec<Vec<(usize, usize)>>,
}

struct Group {
    options: Overrides,
    /// The secret holding the token of the group's sources.
    token_secret: Option<String>,
    mappings: Vec<Mapping>,
}

impl Plan {
    fn new<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Plan {
        let mut groups: Vec<Group> = Vec::new();
        let mut slots = Vec::new();
        for request in requests {
            let secrets = request
                .token_secrets
                .iter()
                .cloned()
                .chain(std::iter::repeat(None));
            let request_slots = request
                .mappings
                .iter()
                .zip(secrets)
                .map(|(mapping, token_secret)| {
                    let group_index = match groups.iter().position(|group| {
                        group.options == request.options && group.token_secret == token_secret
                    }) {
                        Some(index) => index,
                        None => {
                            groups.push(Group {
                                options: request.options.clone(),
                                token_secret,
                                mappings: Vec::new(),
                            });
                            groups.len() - 1
                        }
                    };
                    let group = &mut groups[group_index];
                    let index = match group.mappings.iter().position(|known| known == mapping) {
                        Some(index) => index,
                        None => {
                            group.mappings.push(mapping.clone());
                            group.mappings.len() - 1
                        }
                    };
                    (group_index, index)
                })
                .collect();
            slots.push(request_slots);
        }
        Plan { groups, slots }
    }

    /// The first options error among the groups of request `index`, if any.
    fn options_error<'r>(
        &self,
        index: usize,
        resolved: &'r [Result<MirrorOptions, EventError>],
    ) -> Option<&'r EventError> {
        self.slots.get(index)?.iter().find_map(|(group, _)| {
            resolved
                .get(*group)
                .and_then(|options| options.as_ref().err())
        })
    }

    /// Resolves every group's options; nothing runs yet.
    fn resolve(&self, limits: &Limits) -> Vec<Result<MirrorOptions, EventError>> {
        self.groups
            .iter()
            .map(|group| resolve_options(&group.options, limits, group.mappings.len()))
            .collect()
    }

    /// Mirrors every group whose options resolved (the library logs one line per mapping, and each report is
    /// logged as an EMF record); `None` for the others. A group whose token cannot be read gets failed reports
    /// without running. Fails if the mirror breaks its contract of one report per mapping, in order.
    async fn run<M: Mirror, S: Services>(
        &self,
        mirror: &M,
        tokens: &TokenCache<'_, S>,
        resolved: &[Result<MirrorOptions, EventError>],
    ) -> Result<Vec<Option<Vec<RepoReport>>>, HandlerError> {
        let mut outcomes = Vec::with_capacity(self.groups.len());
        for (group, options) in self.groups.iter().zip(resolved) {
            let Ok(options) = options else {
                outcomes.push(None);
                continue;
            };
            let mut options = options.clone();
            if let Some(secret) = &group.token_secret {
                match tokens.token(secret).await {
                    Ok(token) => options.token = Some(token),
                    Err(error) => {
                        warn!(error = %error, "cannot read a token: its mappings fail");
                        let started = std::time::Instant::now();
                        let reports: Vec<RepoReport> = group
                            .mappings
                            .iter()
                            .map(|mapping| failed_report(mapping, started, error.to_string()))
                            .collect();
                        metrics::emit(&reports);
                        outcomes.push(Some(reports));
                        continue;
                    }
                }
            }
            let reports = mirror.mirror(&group.mappings, &options).await;
            let one_per_mapping = reports.len() == group.mappings.len()
                && reports
                    .iter()
                    .zip(&group.mappings)
                    .all(|(report, mapping)| report.target == mapping.target);
            if !one_per_mapping {
                return Err(HandlerError::Internal(format!(
                    "the mirror returned {} reports for {} mappings",
                    reports.len(),
                    group.mappings.len()
                )));
            }
            metrics::emit(&reports);
            outcomes.push(Some(reports));
        }
        Ok(outcomes)
    }

    /// The reports of request `index`, in its mapping order (none for mappings whose group did not run).
    fn reports_of(&self, index: usize, outcomes: &[Option<Vec<RepoReport>>]) -> Vec<RepoReport> {
        let Some(slots) = self.slots.get(index) else {
            return Vec::new();
        };
        slots
            .iter()
            .filter_map(|&(group, slot)| outcomes.get(group)?.as_ref()?.get(slot).cloned())
            .collect()
    }
}

/// The invocation's summary: `{"mappings": [report, ...]}`.
fn summary(reports: &[RepoReport]) -> Result<Value, HandlerError> {
    let reports = serde_json::to_value(reports)
        .map_err(|error| HandlerError::Internal(format!("serializing the reports: {error}")))?;
    Ok(serde_json::json!({ "mappings": reports }))
}

/// Runs requests that must all be valid before any runs; fails if any mapping failed.
pub(super) async fn run_all_or_nothing<M: Mirror, S: Services>(
    mirror: &M,
    tokens: &TokenCache<'_, S>,
    kind: &str,
    requests: &[Request],
    limits: &Limits,
) -> Result<Value, HandlerError> {
    let plan = Plan::new(requests);
    let resolved = plan.resolve(limits);
    if let Some(Err(error)) = resolved.iter().find(|options| options.is_err()) {
        return Err(error.clone().into());
    }
    let outcomes = plan.run(mirror, tokens, &resolved).await?;
    let reports: Vec<RepoReport> = (0..requests.len())
        .flat_map(|index| plan.reports_of(index, &outcomes))
        .collect();
    let failed = reports.iter().filter(|report| !report.is_ok()).count();
    info!(
        event = kind,
        mappings = reports.len(),
        failed,
        "invocation finished"
    );
    let summary = summary(&reports)?;
    if failed == 0 {
        Ok(summary)
    } else {
        Err(HandlerError::MirrorFailed {
            summary: summary.to_string(),
        })
    }
}

/// Runs the valid messages of an SQS batch and lists the failed ones in `batchItemFailures`.
pub(super) async fn run_sqs<M: Mirror, S: Services>(
    mirror: &M,
    tokens: &TokenCache<'_, S>,
    items: &[SqsItem],
    limits: &Limits,
) -> Result<Value, HandlerError> {
    let plan = Plan::new(items.iter().filter_map(|item| item.request.as_ref().ok()));
    let resolved = plan.resolve(limits);
    let outcomes = plan.run(mirror, tokens, &resolved).await?;
    let mut response = SqsBatchResponse::default();
    let mut valid_index = 0;
    for item in items {
        let failure = match &item.request {
            Err(error) => Some(error.to_string()),
            Ok(_) => {
                let index = valid_index;
                valid_index += 1;
                match plan.options_error(index, &resolved) {
                    Some(error) => Some(error.to_string()),
                    None => {
                        let failed: Vec<String> = plan
                            .reports_of(index, &outcomes)
                            .into_iter()
                            .filter(|report| !report.is_ok())
                            .map(|report| report.source)
                            .collect();
                        (!failed.is_empty())
                            .then(|| format!("failed mappings from {}", failed.join(", ")))
                    }
                }
            }
        };
        match failure {
            Some(reason) => {
                warn!(message_id = %item.message_id, reason = %reason, "SQS message failed: it will be retried");
                response.add_failure(item.message_id.clone());
            }
            None => info!(message_id = %item.message_id, "SQS message done"),
        }
    }
    info!(
        messages = items.len(),
        failed = response.batch_item_failures.len(),
        "SQS batch finished"
    );
    serde_json::to_value(&response)
        .map_err(|error| HandlerError::Internal(format!("serializing the response: {error}")))
}

#[cfg(test)]
mod tests;

//! What bounds one invocation's mirror runs: its deadline and the function's memory.
//!
//! The mirror's deadline is the invocation deadline minus a safety margin of a fifth of the remaining time, at
//! least 1 s and at most 10 s, so an interrupted mapping has time to abort its multipart upload and the function
//! has time to answer. A deadline that is already past (the local emulator sends a relative 600000) or further
//! away than any invocation can last is treated as unknown. The memory budget defaults to 60% of the function's
//! memory, leaving the rest for the runtime, the S3 and HTTP clients and allocator slack, shared between the
//! mappings that run at once; a request may ask for another budget, but not for one that does not fit. This module
//! turns a request's options ([`Overrides`]) into
//! the library's [`MirrorOptions`]; it does not run anything.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::Context;
use tracing::{info, warn};

use super::event::invalid;
use super::EventError;
use crate::options::{MirrorOptions, Overrides};
use crate::upstream::AddressPolicy;

/// Percentage of the function's memory given to the mirror when a request names no budget.
const MEMORY_BUDGET_PERCENT: u64 = 60;
/// Lambda's longest possible invocation; a deadline further away than this is not a real deadline.
const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);
/// Bounds of the safety margin kept between the mirror's deadline and the invocation's.
const MIN_MARGIN: Duration = Duration::from_secs(1);
const MAX_MARGIN: Duration = Duration::from_secs(10);

/// Time left until an invocation deadline given in epoch milliseconds, or `None` when the deadline is unknown:
/// already past (the local emulator sends a relative 600000) or further away than any invocation can last.
pub fn remaining_time(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    let remaining = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (remaining <= MAX_INVOCATION).then_some(remaining)
}

/// The margin kept between the mirror's deadline and the invocation's: a fifth of the remaining time, at least
/// 1 s and at most 10 s.
pub fn safety_margin(remaining: Duration) -> Duration {
    (remaining / 5).clamp(MIN_MARGIN, MAX_MARGIN)
}

/// The instant by which the mirror must have stopped, from the context's deadline (epoch milliseconds).
fn mirror_deadline(deadline_ms: u64, now: SystemTime, now_instant: Instant) -> Option<Instant> {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| u64::try_from(since.as_millis()).ok())?;
    match remaining_time(deadline_ms, now_ms) {
        Some(remaining) => {
            let margin = safety_margin(remaining);
            info!(
                remaining_ms = remaining.as_millis() as u64,
                margin_ms = margin.as_millis() as u64,
                "invocation deadline known: the mirror stops a margin before it"
            );
            Some(now_instant + remaining.saturating_sub(margin))
        }
        None => {
            warn!(
                deadline_ms,
                now_ms, "invocation deadline is past or absurd: running without a deadline"
            );
            None
        }
    }
}

/// What bounds every mirror run of one invocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Limits {
    /// The function's memory size, when known.
    pub(super) function_memory_mib: Option<u64>,
    /// When the mirror must have stopped.
    pub(super) deadline: Option<Instant>,
    /// Where sources may be reached from the function.
    pub(super) sources: AddressPolicy,
}

impl Limits {
    /// The limits of the invocation `context` describes, measured from now.
    pub(super) fn of(context: &Context) -> Limits {
        Limits {
            function_memory_mib: u64::try_from(context.env_config.memory)
                .ok()
                .filter(|&mib| mib > 0),
            deadline: mirror_deadline(context.deadline, SystemTime::now(), Instant::now()),
            sources: AddressPolicy::lambda_from_env(),
        }
    }
}

/// The library's options for a request's options under the function's limits: the request's overrides, with
/// the memory budget defaulting to the function's share, and the invocation's deadline. The budget is per
/// repository and `mappings` run in one call (at most `concurrency` of them at once), so the function's share is
/// split between the mappings that can run at once, and a budget the request names must fit that many times.
pub(super) fn resolve_options(
    options: &Overrides,
    limits: &Limits,
    mappings: usize,
) -> Result<MirrorOptions, EventError> {
    let concurrency = options
        .concurrency
        .unwrap_or(MirrorOptions::default().concurrency);
    let at_once = concurrency.min(mappings).max(1) as u64;
    let budget_mib = match (options.memory_budget_mib, limits.function_memory_mib) {
        (Some(budget), Some(memory)) if budget.saturating_mul(at_once) >= memory => {
            let problem = match at_once {
                1 => format!("{budget} MiB does not fit in the function's {memory} MiB of memory"),
                n => format!(
                    "{budget} MiB for each of {n} mappings at once does not fit in the function's {memory} MiB \
                     of memory (lower concurrency or memory_budget_mib)"
                ),
            };
            return Err(invalid("memory_budget_mib", problem));
        }
        (Some(budget), _) => Some(budget),
        (None, Some(memory)) => Some((memory * MEMORY_BUDGET_PERCENT / 100 / at_once).max(1)),
        (None, None) => None,
    };
    let overrides = Overrides {
        memory_budget_mib: budget_mib,
        ..options.clone()
    };
    let mut resolved = overrides
        .apply(MirrorOptions::default())
        .map_err(|error| invalid(error.field, error.problem))?;
    resolved.deadline = limits.deadline;
    resolved.source_addresses = limits.sources;
    Ok(resolved)
}

#[cfg(test)]
mod tests;

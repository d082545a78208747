//! `mirror-git-to-s3-lambda`: the AWS Lambda function (custom runtime `provided.al2023`, binary `bootstrap`).
//!
//! It talks to the Lambda Runtime API named by `AWS_LAMBDA_RUNTIME_API` and hands every event to
//! [`mirror_git_to_s3::lambda::handle`]. Logs go to stdout through `tracing` as JSON lines, whatever the
//! function's log format, at the level of `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`
//! ([`mirror_git_to_s3::lambda::init_logging`]).

use lambda_runtime::{service_fn, Error};

/// The process allocator: jemalloc gives freed memory back to the system, so peak RSS follows the live heap that
/// the memory budget counts (see `mirror::fetch::Budget`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mirror_git_to_s3::lambda::init_logging();
    lambda_runtime::run(service_fn(mirror_git_to_s3::lambda::handle)).await
}

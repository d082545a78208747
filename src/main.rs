//! `mirror-git-to-s3`: the command-line front of the library.
//!
//! `mirror-git-to-s3 --source URL --target s3://bucket/prefix [--source URL --target TARGET ...]` mirrors each pair;
//! it draws a progress bar per mapping on a terminal, prints plain log lines otherwise, prints one summary line
//! per mapping and exits non-zero if any mapping failed.

use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mirror_git_to_s3::{mirror_repos, Mapping, MappingId, MirrorOptions, Progress, Stage};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The process allocator: jemalloc gives freed memory back to the system, so peak RSS follows the live heap that
/// the memory budget counts (see `mirror::fetch::Budget`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Mirror git repositories served over smart HTTP into S3 (or a directory) for dumb-HTTP cloning.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Source repository URL (repeat; paired in order with --target).
    #[arg(long, required = true)]
    source: Vec<String>,
    /// Target: s3://bucket/prefix or a directory (repeat; one per --source).
    #[arg(long, required = true)]
    target: Vec<String>,
    /// S3 endpoint URL (S3-compatible stores, local test servers); also AWS_ENDPOINT_URL_S3.
    #[arg(long, env = "MIRROR_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// Use path-style S3 addressing (default when --endpoint-url is given).
    #[arg(long)]
    path_style: Option<bool>,
    /// Storage class for uploaded objects (e.g. STANDARD_IA).
    #[arg(long)]
    storage_class: Option<String>,
    /// AWS region of the bucket.
    #[arg(long)]
    region: Option<String>,
    /// Memory budget per repository, in MiB.
    #[arg(long, default_value_t = 256)]
    memory_budget: u64,
    /// Repositories mirrored at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Only mirror refs starting with this prefix (repeatable; default: all refs).
    #[arg(long = "ref-prefix")]
    ref_prefixes: Vec<String>,
    /// Token for private sources (HTTP Basic password).
    #[arg(long, env = "MIRROR_GIT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Pack count at which the next change compacts the mirror into one pack.
    #[arg(long, default_value_t = 16)]
    compaction_threshold: usize,
    /// Hours an unlisted pack is kept before deletion (at least 1).
    #[arg(long, default_value_t = 24)]
    gc_grace_hours: u64,
    /// Largest object a pack may declare, in MiB (default 4096).
    #[arg(long)]
    max_object_mib: Option<u64>,
    /// Most bytes delta resolution may inflate and produce per byte of pack (default 1000; at least 1 GiB).
    #[arg(long)]
    max_inflate_ratio: Option<u64>,
    /// Minutes one mapping may take before it is stopped (nothing new published); shorter than the GC grace.
    #[arg(long, default_value_t = 360)]
    mapping_timeout_minutes: u64,
    /// Largest ref advertisement accepted from a source, in MiB.
    #[arg(long, default_value_t = mirror_git_to_s3::options::DEFAULT_MAX_ADVERTISEMENT_MIB)]
    max_advertisement_mib: u64,
    /// Largest pack accepted from a source, in MiB.
    #[arg(long, default_value_t = mirror_git_to_s3::options::DEFAULT_MAX_PACK_MIB)]
    max_pack_mib: u64,
    /// Verify each mirror first (listed packs and indexes exist, refs' objects are in listed packs) and repair a
    /// broken one by a full fetch.
    #[arg(long)]
    verify: bool,
    /// Print the reports as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Do not mirror Git LFS objects (by default those the new commits' pointers name are copied).
    #[arg(long)]
    no_lfs: bool,
    /// LFS endpoint of the (single) source, instead of <source>.git/info/lfs.
    #[arg(long)]
    lfs_url: Option<String>,
    /// Publish refs even when LFS objects cannot be mirrored; the report lists them.
    #[arg(long)]
    lfs_tolerate_missing: bool,
}

/// One progress bar per mapping, keyed by its index (one source may be mirrored to several targets).
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<usize, ProgressBar>>,
}

impl Progress for Bars {
    fn update(&self, mapping: MappingId<'_>, stage: Stage) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars.entry(mapping.index).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("{} -> {}", mapping.source, mapping.target));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        match stage {
            Stage::Negotiating => bar.set_message("negotiating"),
            Stage::Receiving { bytes } => {
                bar.set_message(format!("receiving {}", indicatif::HumanBytes(bytes)))
            }
            Stage::Resolving { done, total } => {
                bar.set_message(format!("resolving {done}/{total}"))
            }
            Stage::Publishing => bar.set_message("publishing"),
        }
    }
}

/// Plain log lines, one per stage change of each mapping (for logs and pipes, where bars would be noise); keyed
/// by the mapping's index, like the bars.
#[derive(Default)]
struct LogLines {
    last: Mutex<HashMap<usize, std::mem::Discriminant<Stage>>>,
}

impl Progress for LogLines {
    fn update(&self, mapping: MappingId<'_>, stage: Stage) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.insert(mapping.index, std::mem::discriminant(&stage))
            == Some(std::mem::discriminant(&stage))
        {
            return;
        }
        let MappingId { source, target, .. } = mapping;
        match stage {
            Stage::Negotiating => tracing::info!(source, target, "negotiating"),
            Stage::Receiving { .. } => tracing::info!(source, target, "receiving the pack"),
            Stage::Resolving { total, .. } => {
                tracing::info!(source, target, entries = total, "resolving deltas")
            }
            Stage::Publishing => tracing::info!(source, target, "publishing"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // On a terminal the progress bars say what info lines would (and lines would break the bars).
    let terminal = std::io::stderr().is_terminal();
    let default_level = if terminal { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them: piped into a file they are noise.
        .with_ansi(terminal)
        .init();
    if cli.source.len() != cli.target.len() {
        eprintln!(
            "error: {} --source but {} --target: give one --target per --source",
            cli.source.len(),
            cli.target.len()
        );
        return ExitCode::from(2);
    }
    if cli.lfs_url.is_some() && cli.source.len() > 1 {
        eprintln!(
            "error: --lfs-url names the LFS server of one repository: give one --source with it"
        );
        return ExitCode::from(2);
    }
    let mappings: Vec<Mapping> = cli
        .source
        .iter()
        .zip(&cli.target)
        .map(|(s, t)| Mapping {
            source: s.clone(),
            target: t.clone(),
        })
        .collect();
    // The same overrides a Lambda request carries, checked and applied the same way.
    let overrides = mirror_git_to_s3::options::Overrides {
        memory_budget_mib: Some(cli.memory_budget),
        concurrency: Some(cli.concurrency),
        force_path_style: Some(cli.path_style.unwrap_or(cli.endpoint_url.is_some())),
        endpoint_url: cli.endpoint_url,
        storage_class: cli.storage_class,
        region: cli.region,
        ref_prefixes: (!cli.ref_prefixes.is_empty()).then_some(cli.ref_prefixes),
        compaction_threshold: Some(cli.compaction_threshold),
        gc_grace_hours: Some(cli.gc_grace_hours),
        lfs: Some(!cli.no_lfs),
        lfs_url: cli.lfs_url,
        lfs_tolerate_missing: Some(cli.lfs_tolerate_missing),
        max_object_mib: cli.max_object_mib,
        max_inflate_ratio: cli.max_inflate_ratio,
        max_advertisement_mib: Some(cli.max_advertisement_mib),
        max_pack_mib: Some(cli.max_pack_mib),
        verify: Some(cli.verify),
    };
    let mut options = match overrides.apply(MirrorOptions::default()) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {}: {}", flag(error.field), error.problem);
            return ExitCode::from(2);
        }
    };
    // A run must end before the collection of another run could take its unlisted pack for garbage.
    let time_limit = Duration::from_secs(cli.mapping_timeout_minutes.saturating_mul(60));
    if time_limit.is_zero() || time_limit >= options.gc_grace {
        eprintln!(
            "error: --mapping-timeout-minutes: {} must be at least 1 and shorter than --gc-grace-hours ({} \
             minutes), so that no run outlives the grace another run's garbage collection gives its pack",
            cli.mapping_timeout_minutes,
            options.gc_grace.as_secs() / 60
        );
        return ExitCode::from(2);
    }
    options.mapping_time_limit = Some(time_limit);
    options.token = cli.token;
    let bars = terminal.then(|| {
        Arc::new(Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        })
    });
    options.progress = Some(match &bars {
        Some(b) => b.clone() as Arc<dyn Progress>,
        None => Arc::new(LogLines::default()),
    });

    let reports = mirror_repos(&mappings, &options).await;
    if let Some(bars) = bars {
        if let Ok(bars) = bars.bars.lock() {
            bars.values().for_each(ProgressBar::finish_and_clear);
        }
    }
    if cli.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot render the reports: {e}"),
        }
    } else {
        reports.iter().for_each(|r| println!("{r}"));
    }
    let failed = reports.iter().filter(|r| !r.is_ok()).count();
    if failed > 0 {
        eprintln!("error: {failed} of {} mappings failed", reports.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The flag that sets the [`Overrides`](mirror_git_to_s3::options::Overrides) field `field`, for messages.
fn flag(field: &str) -> String {
    match field {
        "memory_budget_mib" => "--memory-budget".to_owned(),
        "force_path_style" => "--path-style".to_owned(),
        "ref_prefixes" => "--ref-prefix".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

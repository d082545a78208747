//! Deadline margin and memory share, and request options reaching the library's options.

use super::*;

#[test]
fn remaining_time_treats_past_and_absurd_deadlines_as_unknown() {
    let now_ms = 1_763_916_786_000;
    assert_eq!(
        remaining_time(now_ms + 5_000, now_ms),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        remaining_time(now_ms + 900_000, now_ms),
        Some(MAX_INVOCATION)
    );
    assert_eq!(
        remaining_time(600_000, now_ms),
        None,
        "the emulator's relative deadline"
    );
    assert_eq!(remaining_time(now_ms - 1, now_ms), None);
    assert_eq!(remaining_time(now_ms + 900_001, now_ms), None);
    assert_eq!(remaining_time(u64::MAX, now_ms), None);
    assert_eq!(remaining_time(0, now_ms), None);
}

#[test]
fn safety_margin_is_a_fifth_within_bounds() {
    assert_eq!(
        safety_margin(Duration::from_secs(3)),
        Duration::from_secs(1)
    );
    assert_eq!(
        safety_margin(Duration::from_secs(30)),
        Duration::from_secs(6)
    );
    assert_eq!(
        safety_margin(Duration::from_secs(900)),
        Duration::from_secs(10)
    );
    assert_eq!(safety_margin(Duration::ZERO), Duration::from_secs(1));
}

#[test]
fn mirror_deadline_comes_from_epoch_milliseconds() {
    let now = UNIX_EPOCH + Duration::from_millis(1_763_916_786_000);
    let instant = Instant::now();
    let deadline = mirror_deadline(1_763_916_786_000 + 60_000, now, instant).unwrap();
    assert_eq!(deadline - instant, Duration::from_secs(50));
    assert_eq!(
        mirror_deadline(1_763_916_786_000 + 500, now, instant),
        Some(instant)
    );
    assert_eq!(mirror_deadline(600_000, now, instant), None);
}

fn limits(memory: Option<u64>) -> Limits {
    Limits {
        function_memory_mib: memory,
        ..Limits::default()
    }
}

#[test]
fn memory_budget_defaults_to_sixty_percent_of_the_function() {
    let resolved = resolve_options(&Overrides::default(), &limits(Some(1024)), 1).unwrap();
    assert_eq!(resolved.memory_budget, 614 << 20);
    let resolved = resolve_options(&Overrides::default(), &limits(None), 1).unwrap();
    assert_eq!(
        resolved.memory_budget,
        MirrorOptions::default().memory_budget
    );
    let asked = Overrides {
        memory_budget_mib: Some(900),
        ..Overrides::default()
    };
    assert_eq!(
        resolve_options(&asked, &limits(Some(1024)), 1)
            .unwrap()
            .memory_budget,
        900 << 20
    );
    assert_eq!(
        resolve_options(&asked, &limits(Some(900)), 1)
            .unwrap_err()
            .to_string(),
        "memory_budget_mib: 900 MiB does not fit in the function's 900 MiB of memory"
    );
}

#[test]
fn the_function_s_share_is_split_between_the_mappings_that_run_at_once() {
    let budget = |concurrency: Option<usize>, mappings: usize| {
        let options = Overrides {
            concurrency,
            ..Overrides::default()
        };
        resolve_options(&options, &limits(Some(1000)), mappings)
            .unwrap()
            .memory_budget
            >> 20
    };
    // 60% of 1000 MiB: whole for one mapping, split by the default concurrency (4) or the request's, and never
    // by more than the mappings there are.
    assert_eq!(budget(None, 1), 600);
    assert_eq!(budget(None, 2), 300);
    assert_eq!(budget(None, 10), 150);
    assert_eq!(budget(Some(2), 10), 300);
    assert_eq!(budget(Some(1), 10), 600);
    // An empty group still gets a budget.
    assert_eq!(budget(None, 0), 600);
    let asked = |mib: u64| Overrides {
        memory_budget_mib: Some(mib),
        concurrency: Some(3),
        ..Overrides::default()
    };
    assert_eq!(
        resolve_options(&asked(333), &limits(Some(1000)), 5)
            .unwrap()
            .memory_budget,
        333 << 20
    );
    assert_eq!(
        resolve_options(&asked(334), &limits(Some(1000)), 5)
            .unwrap_err()
            .to_string(),
        "memory_budget_mib: 334 MiB for each of 3 mappings at once does not fit in the function's 1000 MiB of \
         memory (lower concurrency or memory_budget_mib)"
    );
    // Fewer mappings than the concurrency: only those count.
    assert!(resolve_options(&asked(450), &limits(Some(1000)), 2).is_ok());
}

#[test]
fn request_options_reach_the_mirror_options() {
    let options = Overrides {
        memory_budget_mib: None,
        concurrency: Some(7),
        endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
        force_path_style: Some(true),
        storage_class: Some("STANDARD_IA".to_owned()),
        ..Overrides::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let resolved = resolve_options(
        &options,
        &Limits {
            deadline: Some(deadline),
            ..Limits::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(resolved.concurrency, 7);
    assert_eq!(
        resolved.s3.endpoint_url.as_deref(),
        Some("http://127.0.0.1:5000")
    );
    assert!(resolved.s3.force_path_style);
    assert_eq!(resolved.s3.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(resolved.deadline, Some(deadline));
}

#[test]
fn the_function_s_address_policy_reaches_the_options() {
    let sources = AddressPolicy {
        allow_loopback: false,
        runtime_api: Some(([127, 0, 0, 1], 9001).into()),
    };
    let resolved = resolve_options(
        &Overrides::default(),
        &Limits {
            sources,
            ..Limits::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(resolved.source_addresses, sources);
}

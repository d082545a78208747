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
    let resolved = resolve_options(&Overrides::default(), &limits(Some(1024))).unwrap();
    assert_eq!(resolved.memory_budget, 614 << 20);
    let resolved = resolve_options(&Overrides::default(), &limits(None)).unwrap();
    assert_eq!(
        resolved.memory_budget,
        MirrorOptions::default().memory_budget
    );
    let asked = Overrides {
        memory_budget_mib: Some(900),
        ..Overrides::default()
    };
    assert_eq!(
        resolve_options(&asked, &limits(Some(1024)))
            .unwrap()
            .memory_budget,
        900 << 20
    );
    assert_eq!(
        resolve_options(&asked, &limits(Some(900)))
            .unwrap_err()
            .to_string(),
        "memory_budget_mib: 900 MiB does not fit in the function's 900 MiB of memory"
    );
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
    )
    .unwrap();
    assert_eq!(resolved.source_addresses, sources);
}

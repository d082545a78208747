//! Grouping requests by options and dropping duplicate mappings.

use super::super::test_support::*;
use super::*;

#[test]
fn plan_groups_by_options_and_merges_duplicate_mappings() {
    let fast = Overrides {
        concurrency: Some(8),
        ..Overrides::default()
    };
    let requests = [
        request(vec![mapping(GIT, TARGET), mapping(GIT_2, TARGET_2)]),
        request_with(vec![mapping(GIT, TARGET)], fast.clone()),
        request(vec![mapping(GIT_2, TARGET_2), mapping(GIT, TARGET)]),
    ];
    let plan = Plan::new(&requests);
    assert_eq!(plan.groups.len(), 2);
    assert_eq!(
        plan.groups[0].mappings,
        vec![mapping(GIT, TARGET), mapping(GIT_2, TARGET_2)]
    );
    assert_eq!(plan.groups[1].options, fast);
    assert_eq!(
        plan.slots,
        vec![vec![(0, 0), (0, 1)], vec![(1, 0)], vec![(0, 1), (0, 0)]]
    );
    let outcomes = vec![
        Some(vec![
            report(&plan.groups[0].mappings[0], None),
            report(&plan.groups[0].mappings[1], Some("boom")),
        ]),
        None,
    ];
    let errors = |index| -> Vec<Option<String>> {
        plan.reports_of(index, &outcomes)
            .into_iter()
            .map(|report| report.error)
            .collect()
    };
    assert_eq!(errors(0), vec![None, Some("boom".to_owned())]);
    assert_eq!(errors(2), vec![Some("boom".to_owned()), None]);
    assert_eq!(
        errors(1),
        Vec::<Option<String>>::new(),
        "its group did not run"
    );
}

use super::log_filter;

#[test]
fn the_level_is_read_in_any_case_and_defaults_to_info() {
    assert_eq!(log_filter(Some("DEBUG")).to_string(), "debug");
    assert_eq!(log_filter(Some("warn")).to_string(), "warn");
    assert_eq!(
        log_filter(Some("mirror_git_to_s3=TRACE")).to_string(),
        "mirror_git_to_s3=trace"
    );
    assert_eq!(log_filter(None).to_string(), "info");
    assert_eq!(log_filter(Some("[not a directive")).to_string(), "info");
}

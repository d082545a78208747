//! Fuzz target `lambda_event`: see [`mirror_git_to_s3_fuzz::lambda_event`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::lambda_event(data));

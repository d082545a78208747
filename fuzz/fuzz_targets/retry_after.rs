//! Fuzz target `retry_after`: see [`mirror_git_to_s3_fuzz::retry_after`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::retry_after(data));

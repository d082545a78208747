//! Fuzz target `response`: see [`mirror_git_to_s3_fuzz::response`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::response(data));

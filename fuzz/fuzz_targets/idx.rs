//! Fuzz target `idx`: see [`mirror_git_to_s3_fuzz::idx`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::idx(data));

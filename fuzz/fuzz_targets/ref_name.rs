//! Fuzz target `ref_name`: see [`mirror_git_to_s3_fuzz::ref_name`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::ref_name(data));

//! Fuzz target `resolve`: see [`mirror_git_to_s3_fuzz::resolve`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::resolve(data));

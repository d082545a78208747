//! Fuzz target `layout`: see [`mirror_git_to_s3_fuzz::layout`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::layout(data));

//! Fuzz target `packed_refs`: see [`mirror_git_to_s3_fuzz::packed_refs`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mirror_git_to_s3_fuzz::packed_refs(data));

//! Git delta data for tests, encoded byte by byte: the header's sizes, copy and insert instructions, and a
//! simple delta between two buffers to build realistic chains with.

/// `value` as a little-endian base-128 number, as the sizes in a delta header are written.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// One delta instruction to encode.
#[derive(Clone, Debug)]
pub enum Op {
    /// Copy `len` bytes at `offset` of the base (len 0x10000 is encoded as size 0).
    Copy(u64, u64),
    /// Insert literal bytes (split into pieces of at most 127).
    Insert(Vec<u8>),
}

/// Encodes a delta from its header and instructions.
pub fn encode(base_size: u64, result_size: u64, ops: &[Op]) -> Vec<u8> {
    let mut out = varint(base_size);
    out.extend(varint(result_size));
    for op in ops {
        match op {
            Op::Copy(offset, len) => {
                let len = if *len == 0x10000 { 0 } else { *len };
                let mut op = 0x80u8;
                let mut args = Vec::new();
                for i in 0..4 {
                    let b = (offset >> (8 * i)) as u8;
                    if b != 0 {
                        op |= 1 << i;
                        args.push(b);
                    }
                }
                for i in 0..3 {
                    let b = (len >> (8 * i)) as u8;
                    if b != 0 {
                        op |= 1 << (4 + i);
                        args.push(b);
                    }
                }
                out.push(op);
                out.extend(args);
            }
            Op::Insert(data) => {
                for piece in data.chunks(127) {
                    out.push(piece.len() as u8);
                    out.extend_from_slice(piece);
                }
            }
        }
    }
    out
}

/// A simple delta turning `base` into `target`: copies the longest common prefix and suffix, inserts the
/// middle. Good enough to build realistic chains in tests.
pub fn make(base: &[u8], target: &[u8]) -> Vec<u8> {
    let prefix = base.iter().zip(target).take_while(|(a, b)| a == b).count();
    let max_suffix = base.len().min(target.len()) - prefix;
    let suffix = base
        .iter()
        .rev()
        .zip(target.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let mut ops = Vec::new();
    let copy = |offset: usize, len: usize, ops: &mut Vec<Op>| {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(0xff_ffff);
            ops.push(Op::Copy((offset + done) as u64, n as u64));
            done += n;
        }
    };
    copy(0, prefix, &mut ops);
    let middle = &target[prefix..target.len() - suffix];
    if !middle.is_empty() {
        ops.push(Op::Insert(middle.to_vec()));
    }
    copy(base.len() - suffix, suffix, &mut ops);
    encode(base.len() as u64, target.len() as u64, &ops)
}

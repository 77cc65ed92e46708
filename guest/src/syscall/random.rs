//! `getrandom(buf, count, flags)`, with Linux's flag checks.
//!
//! The bytes come from a SplitMix64 stream keyed by the TSC at each call:
//! unpredictable enough for what programs ask at start-up (glibc's malloc
//! and hash seeds, stack protector values come from AT_RANDOM), but not a
//! cryptographic generator: the kernel has no entropy pool.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{current_mm, Args, SysResult};
use crate::arch::cpu;
use crate::errno::EINVAL;

const GRND_NONBLOCK: u64 = 0x1;
const GRND_RANDOM: u64 = 0x2;
const GRND_INSECURE: u64 = 0x4;

/// The generator's state, moved by every call.
static STATE: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

fn next_word() -> u64 {
    let mut z = STATE
        .fetch_add(0x9e37_79b9_7f4a_7c15 ^ cpu::rdtsc(), Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn getrandom(a: Args) -> SysResult {
    let [buf, count, flags, ..] = a.0;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_INSECURE | GRND_RANDOM) == GRND_INSECURE | GRND_RANDOM
    {
        return Err(EINVAL);
    }
    let count = count.min(i32::MAX as u64);
    let mm = current_mm()?;
    let mut done = 0u64;
    let mut chunk = [0u8; 256];
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        for word in chunk[..n].chunks_mut(8) {
            word.copy_from_slice(&next_word().to_le_bytes()[..word.len()]);
        }
        if let Err(e) = mm.copy_to_user(buf + done, &chunk[..n]) {
            // Linux returns what it copied before the bad byte.
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as u64;
    }
    Ok(done)
}

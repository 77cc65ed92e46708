//! Clocks for benchmarks.
//!
//! The TSC is read directly in user mode (`rdtsc` is not trapped on Linux
//! or the forkvm guest), so a measurement includes no system call of its own.
//! `rdtscp` is avoided: not every virtual CPU exposes it. Instead `lfence`
//! on both sides orders the read: the one before waits until earlier
//! instructions have completed, the one after keeps later instructions from
//! starting before the TSC is read (on AMD, `lfence` is dispatch-serialising
//! wherever Linux has enabled it so, which it does by default).
//! User space does not know the TSC frequency, so results are in cycles.

use core::arch::asm;

use crate::syscall::{clock_gettime, CLOCK_MONOTONIC};

/// Reads the TSC with no ordering: cheap, but the CPU may move it across
/// neighbouring instructions.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the time-stamp counter into edx:eax.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads the TSC after all earlier instructions have completed and before
/// any later one starts (`lfence; rdtsc; lfence`). Use it on both sides of
/// a measured region.
#[inline(always)]
pub fn rdtsc_serialized() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: lfence and rdtsc touch no memory. Not `nomem`: the fences must
    // also stay ordered against the compiler's memory accesses.
    unsafe {
        asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi,
             options(nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// `CLOCK_MONOTONIC` in nanoseconds (a system call: no vDSO here).
pub fn monotonic_ns() -> u64 {
    clock_gettime(CLOCK_MONOTONIC).map_or(0, |t| t.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance() {
        let (t0, n0) = (rdtsc_serialized(), monotonic_ns());
        let mut x = 0u64;
        for i in 0..100_000 {
            x = core::hint::black_box(x.wrapping_add(i));
        }
        let (t1, n1) = (rdtsc_serialized(), monotonic_ns());
        assert!(t1 > t0 && n1 > n0 && n0 > 0);
        assert!(rdtsc() >= t1);
    }
}

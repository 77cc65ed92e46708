//! The C memory functions the compiler emits calls to (and `strlen`), and the unwinding
//! symbols the precompiled `alloc` refers to. Without libc nothing else
//! provides them (the host target's `compiler_builtins` does not).
//!
//! `rep movsb`/`rep stosb` are fast on every CPU with ERMSB and, unlike a
//! Rust loop, cannot be compiled back into a call to themselves. The
//! comparison loops use volatile reads for the same reason.

use core::arch::asm;

/// # Safety
/// Standard C `memcpy` contract.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid and disjoint; the
    // direction flag is clear per the ABI.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// Standard C `memmove` contract.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest is below src or the ranges do not overlap: copy forwards.
        // SAFETY: forwards copying is correct for these ranges.
        return unsafe { memcpy(dest, src, n) };
    }
    // Overlapping with dest above src: copy backwards, then restore the
    // direction flag the ABI requires to be clear.
    // SAFETY: the caller guarantees both ranges are valid.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dest.wrapping_add(n).wrapping_sub(1) => _,
             inout("rsi") src.wrapping_add(n).wrapping_sub(1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// Standard C `memset` contract.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range is valid.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") value as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// Standard C `memcmp` contract.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees n readable bytes at both.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// Standard C `bcmp` contract (zero iff equal).
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// Standard C `strlen` contract. (`core::ffi::CStr::from_ptr` calls it.)
#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees a readable NUL-terminated string.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// Referenced by the precompiled `alloc`; never called with panic=abort.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::syscall::exit_group(134)
}

/// Referenced by the precompiled `alloc`; never called with panic=abort.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

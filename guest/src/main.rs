//! The kernel image. Everything is in the `guest` library; this binary only
//! makes the linker keep its boot entry `_start` (and, through it, the
//! whole kernel).
#![no_std]
#![no_main]

use guest as _;

extern "C" {
    fn _start() -> !;
}

#[used]
static ENTRY: unsafe extern "C" fn() -> ! = _start;

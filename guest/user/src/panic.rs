//! Panics print `panic: <message>` on stderr and end the process with status
//! 134 (what a shell shows for an abort), so a failing program is visible in
//! a test's output and exit status alike. Formatting goes to a stack buffer:
//! the heap may be what broke.

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    crate::eprintln!("panic: {}", info.message());
    crate::syscall::exit_group(134)
}

//! The serial console shell (in the kernel until user processes exist).
//!
//! Interactive mode reads lines with the line editor; script mode runs the
//! commands the VMM passed with `forkvm -c` and powers off with the last
//! command's status.

pub mod line_editor;

#[cfg(not(test))]
mod commands;
#[cfg(not(test))]
pub use self::commands::run;

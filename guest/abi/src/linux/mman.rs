//! `mmap`'s protections and flags (`include/uapi/asm-generic/mman-common.h`,
//! `mman.h`, `include/uapi/linux/mman.h`).

pub const PROT_NONE: u32 = 0;
pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

pub const MAP_SHARED: u32 = 0x01;
pub const MAP_PRIVATE: u32 = 0x02;
pub const MAP_FIXED: u32 = 0x10;
pub const MAP_ANONYMOUS: u32 = 0x20;
pub const MAP_GROWSDOWN: u32 = 0x100;
/// Ignored (Linux accepts it for compatibility).
pub const MAP_DENYWRITE: u32 = 0x800;
/// Ignored (Linux accepts it for compatibility).
pub const MAP_EXECUTABLE: u32 = 0x1000;
pub const MAP_NORESERVE: u32 = 0x4000;
pub const MAP_POPULATE: u32 = 0x8000;
/// A hint only.
pub const MAP_STACK: u32 = 0x20000;
pub const MAP_FIXED_NOREPLACE: u32 = 0x100000;

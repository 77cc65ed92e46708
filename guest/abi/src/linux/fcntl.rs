//! `open` flags and `fcntl` commands (`include/uapi/asm-generic/fcntl.h`,
//! `include/uapi/linux/fcntl.h`).

/// The access mode bits of the open flags.
pub const O_ACCMODE: u32 = 0o3;
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 0o1;
pub const O_RDWR: u32 = 0o2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_PATH: u32 = 0o10000000;
/// An unnamed file in the directory opened (it includes `O_DIRECTORY`).
pub const O_TMPFILE: u32 = 0o20000000 | O_DIRECTORY;

/// `fcntl` commands.
pub const F_DUPFD: u32 = 0;
pub const F_GETFD: u32 = 1;
pub const F_SETFD: u32 = 2;
pub const F_GETFL: u32 = 3;
pub const F_SETFL: u32 = 4;
pub const F_DUPFD_CLOEXEC: u32 = 1030;
/// The descriptor flag `F_GETFD`/`F_SETFD` read and write.
pub const FD_CLOEXEC: u32 = 1;

/// The `*at` calls' directory argument for the working directory.
pub const AT_FDCWD: i32 = -100;

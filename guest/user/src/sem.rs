//! System V semaphores: the Linux x86-64 system calls and structures.
//!
//! - `semget`(64), `semop`(65), `semctl`(66), `semtimedop`(220).
//! - `struct sembuf` {num: u16, op: i16, flg: i16}; `struct semid64_ds`
//!   (104 bytes: `ipc64_perm`, then otime, ctime, nsems with unused words
//!   between); `struct seminfo` (ten ints).
//! - `semctl` commands go to the kernel as they are: x86-64 Linux refuses
//!   one with the `IPC_64` bit (0x100) set (EINVAL), so none is added.

use crate::errno::Errno;
use crate::syscall::{check, syscall3, syscall4, Timespec};

use crate::syscall::nr;

/// `semget` key for a new set nobody else can find by key.
pub const IPC_PRIVATE: i32 = 0;
/// `semget` flag: create the set if the key has none.
pub const IPC_CREAT: i32 = 0o1000;
/// `semget` flag with `IPC_CREAT`: fail (EEXIST) if the key has a set.
pub const IPC_EXCL: i32 = 0o2000;
/// `sem_flg`: fail with EAGAIN instead of waiting.
pub const IPC_NOWAIT: i16 = 0o4000;
/// `sem_flg`: undo the operation when the process exits.
pub const SEM_UNDO: i16 = 0x1000;

/// `semctl` commands.
pub mod cmd {
    #![allow(missing_docs)]
    pub const IPC_RMID: i32 = 0;
    pub const IPC_SET: i32 = 1;
    pub const IPC_STAT: i32 = 2;
    pub const IPC_INFO: i32 = 3;
    pub const GETPID: i32 = 11;
    pub const GETVAL: i32 = 12;
    pub const GETALL: i32 = 13;
    pub const GETNCNT: i32 = 14;
    pub const GETZCNT: i32 = 15;
    pub const SETVAL: i32 = 16;
    pub const SETALL: i32 = 17;
    pub const SEM_STAT: i32 = 18;
    pub const SEM_INFO: i32 = 19;
    pub const SEM_STAT_ANY: i32 = 20;
    /// Asks for the 64-bit structures on architectures that need it; not
    /// on x86-64, where it makes any command invalid.
    pub const IPC_64: i32 = 0x100;
}

/// `struct sembuf`: one operation of `semop`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemBuf {
    /// The semaphore's index in the set.
    pub num: u16,
    /// Added to the value; 0 waits for the value to be zero.
    pub op: i16,
    /// `IPC_NOWAIT`, `SEM_UNDO`.
    pub flg: i16,
}

impl SemBuf {
    /// An operation on semaphore `num`.
    pub const fn new(num: u16, op: i16, flg: i16) -> Self {
        Self { num, op, flg }
    }
}

/// `struct ipc64_perm` (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ipc64Perm {
    /// The key the set was created with (0 for `IPC_PRIVATE`).
    pub key: i32,
    /// Owner.
    pub uid: u32,
    /// Owner's group.
    pub gid: u32,
    /// Creator.
    pub cuid: u32,
    /// Creator's group.
    pub cgid: u32,
    /// Permission bits (the low 9 are used).
    pub mode: u32,
    /// The sequence number in the set's id.
    pub seq: u16,
    /// Padding.
    pub pad2: u16,
    /// Unused.
    pub unused1: u64,
    /// Unused.
    pub unused2: u64,
}

/// `struct semid64_ds` (x86-64), what IPC_STAT fills and IPC_SET reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemidDs {
    /// Owner, creator, mode.
    pub perm: Ipc64Perm,
    /// Last `semop` (realtime seconds; 0: none yet).
    pub otime: i64,
    /// Unused.
    pub unused1: u64,
    /// Creation or last change by `semctl`.
    pub ctime: i64,
    /// Unused.
    pub unused2: u64,
    /// Semaphores in the set.
    pub nsems: u64,
    /// Unused.
    pub unused3: u64,
    /// Unused.
    pub unused4: u64,
}

/// `struct seminfo`, what IPC_INFO and SEM_INFO fill.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seminfo {
    /// SEMMAP (historical).
    pub semmap: i32,
    /// Most sets.
    pub semmni: i32,
    /// Most semaphores, all sets together.
    pub semmns: i32,
    /// SEMMNU (historical).
    pub semmnu: i32,
    /// Most semaphores in a set.
    pub semmsl: i32,
    /// Most operations in one `semop`.
    pub semopm: i32,
    /// SEMUME (historical).
    pub semume: i32,
    /// IPC_INFO: SEMUSZ; SEM_INFO: sets in use.
    pub semusz: i32,
    /// Largest value.
    pub semvmx: i32,
    /// IPC_INFO: SEMAEM; SEM_INFO: semaphores in use.
    pub semaem: i32,
}

/// `semget(2)`: the id of the set of `key` (a new one for `IPC_PRIVATE`).
pub fn semget(key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall3(nr::SEMGET, key as usize, nsems as usize, flags as usize) })
        .map(|id| id as i32)
}

/// `semop(2)`: all of `ops`, atomically, waiting as long as needed.
pub fn semop(id: i32, ops: &[SemBuf]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `ops.len()` live entries.
    check(unsafe { syscall3(nr::SEMOP, id as usize, ops.as_ptr() as usize, ops.len()) }).map(drop)
}

/// `semtimedop(2)`: [`semop`] waiting at most `timeout` (EAGAIN after it;
/// `None` waits as long as needed).
pub fn semtimedop(id: i32, ops: &[SemBuf], timeout: Option<&Timespec>) -> Result<(), Errno> {
    let timeout = timeout.map_or(0, |t| t as *const Timespec as usize);
    // SAFETY: the kernel reads `ops.len()` live entries and, if not NULL,
    // one live timespec.
    check(unsafe {
        syscall4(
            nr::SEMTIMEDOP,
            id as usize,
            ops.as_ptr() as usize,
            ops.len(),
            timeout,
        )
    })
    .map(drop)
}

/// `semctl(2)` with an integer argument (or none): IPC_RMID, GETVAL,
/// GETPID, GETNCNT, GETZCNT, SETVAL.
pub fn semctl(id: i32, num: i32, cmd: i32, val: i32) -> Result<usize, Errno> {
    assert!(
        !matches!(
            cmd & !cmd::IPC_64,
            cmd::IPC_SET
                | cmd::IPC_STAT
                | cmd::IPC_INFO
                | cmd::GETALL
                | cmd::SETALL
                | cmd::SEM_STAT
                | cmd::SEM_INFO
                | cmd::SEM_STAT_ANY
        ),
        "semctl: command {cmd} takes a pointer"
    );
    // SAFETY: these commands read no memory of ours and write none.
    check(unsafe {
        syscall4(
            nr::SEMCTL,
            id as usize,
            num as usize,
            cmd as usize,
            val as u32 as usize,
        )
    })
}

/// `semctl(id, 0, cmd, &ds)` for IPC_STAT (returns 0), SEM_STAT and
/// SEM_STAT_ANY (`id` is an index; returns the set's id).
pub fn semctl_stat(id: i32, cmd: i32) -> Result<(usize, SemidDs), Errno> {
    assert!(matches!(
        cmd,
        cmd::IPC_STAT | cmd::SEM_STAT | cmd::SEM_STAT_ANY
    ));
    let mut ds = SemidDs::default();
    // SAFETY: the kernel writes one `semid64_ds` into the live local.
    let ret = check(unsafe {
        syscall4(
            nr::SEMCTL,
            id as usize,
            0,
            cmd as usize,
            &mut ds as *mut SemidDs as usize,
        )
    })?;
    Ok((ret, ds))
}

/// `semctl(id, 0, IPC_SET, &ds)`: the owner's uid and gid and the mode's
/// low 9 bits from `ds`.
pub fn semctl_set(id: i32, ds: &SemidDs) -> Result<(), Errno> {
    // SAFETY: the kernel reads one live `semid64_ds`.
    check(unsafe {
        syscall4(
            nr::SEMCTL,
            id as usize,
            0,
            cmd::IPC_SET as usize,
            ds as *const SemidDs as usize,
        )
    })
    .map(drop)
}

/// `semctl(0, 0, cmd, &info)` for IPC_INFO and SEM_INFO: the limits and
/// the highest index in use.
pub fn semctl_info(cmd: i32) -> Result<(usize, Seminfo), Errno> {
    assert!(matches!(cmd, cmd::IPC_INFO | cmd::SEM_INFO));
    let mut info = Seminfo::default();
    // SAFETY: the kernel writes one `seminfo` into the live local.
    let ret = check(unsafe {
        syscall4(
            nr::SEMCTL,
            0,
            0,
            cmd as usize,
            &mut info as *mut Seminfo as usize,
        )
    })?;
    Ok((ret, info))
}

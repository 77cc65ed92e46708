//! Memory calls beyond mmap: `madvise` (MADV_DONTNEED drops pages,
//! MADV_DONTFORK keeps an area out of a child), `mremap` (shrink, grow in
//! place, move with the contents, MREMAP_FIXED), `mincore`, `msync` and
//! the `mlock` family against RLIMIT_MEMLOCK, with Linux's errno.

use forkvm_user::cred::{self, Rlimit};
use forkvm_user::syscall::{check, mmap, syscall6, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("madvise-dontneed-anon", madvise_dontneed_anon),
    ("madvise-dontneed-file", madvise_dontneed_file),
    ("madvise-errors", madvise_errors),
    ("madvise-dontfork", madvise_dontfork),
    ("mremap-shrink-grow-move", mremap_shrink_grow_move),
    ("mremap-fixed-and-cow", mremap_fixed_and_cow),
    ("mremap-errors", mremap_errors),
    ("mincore-residency", mincore_residency),
    ("msync-checks", msync_checks),
    ("mlock-limits", mlock_limits),
];

use forkvm_user::syscall::nr::{MADVISE, MINCORE, MLOCK, MLOCK2, MLOCKALL, MREMAP, MSYNC, MUNLOCK, MUNLOCKALL, OPEN, PREAD64, PWRITE64, UNLINK};

const MADV_NORMAL: usize = 0;
const MADV_DONTNEED: usize = 4;
const MADV_FREE: usize = 8;
const MADV_DONTFORK: usize = 10;
const MADV_DOFORK: usize = 11;
const MREMAP_MAYMOVE: usize = 1;
const MREMAP_FIXED: usize = 2;
const MREMAP_DONTUNMAP: usize = 4;
const MS_ASYNC: usize = 1;
const MS_INVALIDATE: usize = 2;
const MS_SYNC: usize = 4;
const MCL_CURRENT: usize = 1;
const MCL_ONFAULT: usize = 4;
const RLIMIT_MEMLOCK: u32 = 8;
const P: usize = 4096;
/// An address in the kernel half: never user memory.
const KERNEL_ADDR: usize = 0xffff_8000_0000_0000;

fn sys(n: usize, a: [usize; 5]) -> Result<usize, Errno> {
    // SAFETY: the scenarios pass only their own mappings and buffers, or
    // addresses the kernel must refuse.
    check(unsafe { syscall6(n, a[0], a[1], a[2], a[3], a[4], 0) })
}

fn madvise(addr: usize, len: usize, advice: usize) -> Result<usize, Errno> {
    sys(MADVISE, [addr, len, advice, 0, 0])
}

fn mremap(addr: usize, old: usize, new: usize, flags: usize, to: usize) -> Result<usize, Errno> {
    sys(MREMAP, [addr, old, new, flags, to])
}

/// `mincore` of `pages` pages (at most 8) from `addr`.
fn mincore(addr: usize, pages: usize) -> Result<[u8; 8], Errno> {
    let mut vec = [0xffu8; 8];
    sys(MINCORE, [addr, pages * P, vec.as_mut_ptr() as usize, 0, 0])?;
    for byte in vec.iter_mut().skip(pages) {
        *byte = 0;
    }
    Ok(vec)
}

fn resident(addr: usize, pages: usize) -> Result<[u8; 8], Msg> {
    let mut vec = mincore(addr, pages).ctx("mincore")?;
    for byte in vec.iter_mut() {
        *byte &= 1;
    }
    Ok(vec)
}

fn bits(list: &[u8]) -> [u8; 8] {
    let mut vec = [0u8; 8];
    vec[..list.len()].copy_from_slice(list);
    vec
}

fn map(len: usize, flags: u32, fd: i32) -> Result<usize, Msg> {
    // SAFETY: no MAP_FIXED: nothing of ours is replaced.
    let p = unsafe { mmap(0, len, PROT_READ | PROT_WRITE, flags, fd, 0) }.ctx("mmap")?;
    Ok(p as usize)
}

fn unmap(addr: usize, len: usize) -> Outcome {
    // SAFETY: the scenarios unmap only their own mappings.
    unsafe { munmap(addr as *mut u8, len) }.ctx("munmap")
}

fn get(addr: usize) -> u8 {
    // SAFETY: callers read only mapped, readable bytes.
    unsafe { (addr as *const u8).read_volatile() }
}

fn put(addr: usize, value: u8) {
    // SAFETY: callers write only mapped, writable bytes.
    unsafe { (addr as *mut u8).write_volatile(value) }
}

fn fill(addr: usize, pages: usize, first: u8) {
    for i in 0..pages {
        put(addr + i * P, first + i as u8);
        put(addr + i * P + P - 1, first + i as u8);
    }
}

/// A file of `pages` pages of `byte` in /tmp, already unlinked.
fn temp_file(pages: usize, byte: u8) -> Result<Fd, Msg> {
    let mut path = *b"/tmp/proctest-vmcalls-0000000000\0";
    let mut pid = getpid();
    for digit in path[22..32].iter_mut().rev() {
        *digit = b'0' + (pid % 10) as u8;
        pid /= 10;
    }
    use forkvm_abi::linux::fcntl::{O_CREAT, O_RDWR, O_TRUNC};
    let flags = (O_RDWR | O_CREAT | O_TRUNC) as usize;
    let fd = sys(OPEN, [path.as_ptr() as usize, flags, 0o600, 0, 0]).ctx("open")?;
    let fd = Fd(fd as i32);
    sys(UNLINK, [path.as_ptr() as usize, 0, 0, 0, 0]).ctx("unlink")?;
    let page = [byte; P];
    for i in 0..pages {
        let n = sys(PWRITE64, [fd.raw() as usize, page.as_ptr() as usize, P, i * P, 0]);
        ensure!(n == Ok(P), "pwrite: {n:?}");
    }
    Ok(fd)
}

/// MADV_DONTNEED frees private anonymous pages: they read zero again and
/// are not resident until touched; the pages around them are kept.
fn madvise_dontneed_anon(_: &Ctx) -> Outcome {
    let m = map(4 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    fill(m, 4, 10);
    ensure!(resident(m, 4)? == bits(&[1, 1, 1, 1]), "resident before: {:?}", resident(m, 4)?);
    madvise(m + P, 2 * P, MADV_DONTNEED).ctx("MADV_DONTNEED")?;
    ensure!(resident(m, 4)? == bits(&[1, 0, 0, 1]), "resident after: {:?}", resident(m, 4)?);
    let seen = [get(m), get(m + P), get(m + 2 * P + P - 1), get(m + 3 * P)];
    ensure!(seen == [10, 0, 0, 13], "contents after MADV_DONTNEED: {seen:?}");
    // Unaligned lengths round up to the page.
    madvise(m, 1, MADV_DONTNEED).ctx("MADV_DONTNEED of 1 byte")?;
    ensure!(get(m + P - 1) == 0, "page 0 kept after MADV_DONTNEED of 1 byte");
    unmap(m, 4 * P)
}

/// In a private file mapping, MADV_DONTNEED drops the private copies:
/// the file's contents come back. A shared mapping's stores are the
/// file's: they stay.
fn madvise_dontneed_file(_: &Ctx) -> Outcome {
    let fd = temp_file(2, b'F')?;
    let m = map(2 * P, MAP_PRIVATE, fd.raw())?;
    put(m, b'X');
    put(m + P, b'Y');
    madvise(m, P, MADV_DONTNEED).ctx("MADV_DONTNEED private")?;
    ensure!((get(m), get(m + P)) == (b'F', b'Y'), "private after: {:?}", (get(m), get(m + P)));
    let e = madvise(m, P, MADV_FREE);
    ensure!(e == Err(Errno::EINVAL), "MADV_FREE of a file mapping: {e:?}");
    unmap(m, 2 * P)?;
    let s = map(P, MAP_SHARED, fd.raw())?;
    put(s, b'S');
    madvise(s, P, MADV_DONTNEED).ctx("MADV_DONTNEED shared")?;
    ensure!(get(s) == b'S', "shared after MADV_DONTNEED: {}", get(s));
    unmap(s, P)
}

/// Unknown advice and unaligned starts are EINVAL; length 0 is nothing;
/// a range with a hole is ENOMEM, after the mapped parts got the advice.
fn madvise_errors(_: &Ctx) -> Outcome {
    let m = map(3 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    fill(m, 3, 1);
    let cases = [
        ("advice 999", madvise(m, P, 999), Err(Errno::EINVAL)),
        ("advice -1", madvise(m, P, usize::MAX), Err(Errno::EINVAL)),
        ("unaligned start", madvise(m + 1, P, MADV_NORMAL), Err(Errno::EINVAL)),
        ("length 0", madvise(m, 0, 999_999), Err(Errno::EINVAL)),
        ("length 0, valid advice", madvise(m + 1, 0, MADV_NORMAL), Err(Errno::EINVAL)),
        ("length 0 at a page", madvise(m, 0, MADV_DONTNEED), Ok(0)),
        ("wrapping length", madvise(m, usize::MAX - 10, MADV_NORMAL), Err(Errno::EINVAL)),
    ];
    for (what, got, want) in cases {
        ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    }
    unmap(m + P, P)?;
    let e = madvise(m, 3 * P, MADV_DONTNEED);
    ensure!(e == Err(Errno::ENOMEM), "DONTNEED over a hole: {e:?}");
    ensure!((get(m), get(m + 2 * P)) == (0, 0), "the mapped parts kept their pages");
    let e = madvise(m + P, P, MADV_NORMAL);
    ensure!(e == Err(Errno::ENOMEM), "advice for the hole: {e:?}");
    unmap(m, 3 * P)
}

/// A MADV_DONTFORK page is not in a forked child (mincore ENOMEM there);
/// the page beside it is, with its contents; MADV_DOFORK undoes it.
fn madvise_dontfork(_: &Ctx) -> Outcome {
    let m = map(2 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    fill(m, 2, 50);
    madvise(m, P, MADV_DONTFORK).ctx("MADV_DONTFORK")?;
    let child = Child::spawn(|| {
        let gone = mincore(m, 1) == Err(Errno::ENOMEM);
        let kept = get(m + P) == 51;
        i32::from(!gone) | i32::from(!kept) << 1
    })?;
    expect_exit("child after MADV_DONTFORK", child.wait()?, 0)?;
    madvise(m, P, MADV_DOFORK).ctx("MADV_DOFORK")?;
    let child = Child::spawn(|| i32::from(get(m) != 50))?;
    expect_exit("child after MADV_DOFORK", child.wait()?, 0)?;
    unmap(m, 2 * P)
}

/// Shrinking unmaps the tail; growing stays in place when the pages above
/// are free, else is ENOMEM without MREMAP_MAYMOVE, and with it moves the
/// contents to a new address: the old range is gone, the new pages zero.
fn mremap_shrink_grow_move(_: &Ctx) -> Outcome {
    let m = map(4 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    fill(m, 4, 20);
    let got = mremap(m, 4 * P, 2 * P, 0, 0);
    ensure!(got == Ok(m), "shrink: {got:?}");
    ensure!(mincore(m + 2 * P, 1) == Err(Errno::ENOMEM), "the tail is still mapped");
    let got = mremap(m, 2 * P, 3 * P, 0, 0);
    ensure!(got == Ok(m), "grow in place: {got:?}");
    ensure!((get(m + P), get(m + 2 * P)) == (21, 0), "after growing in place");
    // Block the pages above with another mapping.
    // SAFETY: the page above is free (just grown into, then given back).
    unmap(m + 2 * P, P)?;
    // SAFETY: m + 2P is unmapped: MAP_FIXED replaces nothing of ours.
    unsafe { mmap(m + 2 * P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) }
        .ctx("mmap the blocker")?;
    let got = mremap(m, 2 * P, 4 * P, 0, 0);
    ensure!(got == Err(Errno::ENOMEM), "grow into a mapping: {got:?}");
    let moved = mremap(m, 2 * P, 4 * P, MREMAP_MAYMOVE, 0).ctx("grow with MAYMOVE")?;
    ensure!(moved != m, "MAYMOVE stayed at {m:#x}");
    let seen = [get(moved), get(moved + P), get(moved + P + P - 1), get(moved + 3 * P)];
    ensure!(seen == [20, 21, 21, 0], "contents after the move: {seen:?}");
    ensure!(mincore(m, 1) == Err(Errno::ENOMEM), "the old range is still mapped");
    put(moved + 3 * P, 7);
    unmap(moved, 4 * P)?;
    unmap(m + 2 * P, P)
}

/// MREMAP_FIXED replaces what was at the target; a private page moved in
/// a forked child keeps the parent's copy apart (copy-on-write survives
/// the move); MREMAP_DONTUNMAP leaves the old range mapped and empty.
fn mremap_fixed_and_cow(_: &Ctx) -> Outcome {
    let a = map(2 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    let b = map(2 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    fill(a, 2, 30);
    fill(b, 2, 90);
    let got = mremap(a, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, b);
    ensure!(got == Ok(b), "MREMAP_FIXED: {got:?}");
    ensure!((get(b), get(b + P)) == (30, 31), "at the target: {:?}", (get(b), get(b + P)));
    ensure!(mincore(a, 1) == Err(Errno::ENOMEM), "the source is still mapped");
    // `a` is free now: the child moves its copy of `b` there.
    let child = Child::spawn(|| {
        if mremap(b, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, a) != Ok(a) {
            return 1;
        }
        put(a, 77);
        i32::from(get(a) != 77 || get(a + P) != 31) << 1
    })?;
    expect_exit("child moving a COW page", child.wait()?, 0)?;
    ensure!(get(b) == 30, "the parent's page changed to {}", get(b));
    let to = mremap(b, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0).ctx("DONTUNMAP")?;
    ensure!((get(to), get(to + P)) == (30, 31), "after DONTUNMAP");
    ensure!(resident(b, 2)? == bits(&[0, 0]), "the old range still has pages");
    ensure!(get(b) == 0, "the old range is not zero-fill");
    unmap(to, 2 * P)?;
    unmap(b, 2 * P)
}

fn mremap_errors(_: &Ctx) -> Outcome {
    // Two pages with nothing mapped above them.
    let m = map(3 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    unmap(m + 2 * P, P)?;
    let hole = map(P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    unmap(hole, P)?;
    let cases = [
        ("unknown flag", mremap(m, P, P, 8, 0), Err(Errno::EINVAL)),
        ("FIXED without MAYMOVE", mremap(m, P, P, MREMAP_FIXED, hole), Err(Errno::EINVAL)),
        (
            "DONTUNMAP changing size",
            mremap(m, P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0),
            Err(Errno::EINVAL),
        ),
        ("unaligned address", mremap(m + 1, P, P, 0, 0), Err(Errno::EINVAL)),
        ("new length 0", mremap(m, P, 0, 0, 0), Err(Errno::EINVAL)),
        ("unmapped address", mremap(hole, P, 2 * P, MREMAP_MAYMOVE, 0), Err(Errno::EFAULT)),
        ("past the area", mremap(m, 3 * P, 4 * P, MREMAP_MAYMOVE, 0), Err(Errno::EFAULT)),
        (
            "overlapping FIXED",
            mremap(m, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, m + P),
            Err(Errno::EINVAL),
        ),
        (
            "unaligned FIXED target",
            mremap(m, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, hole + 1),
            Err(Errno::EINVAL),
        ),
        ("same size", mremap(m, 2 * P, 2 * P, 0, 0), Ok(m)),
    ];
    for (what, got, want) in cases {
        ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    }
    unmap(m, 2 * P)
}

/// Untouched anonymous pages are not resident, touched ones are; a
/// file's cached pages are even before they are touched. Errors: EINVAL
/// unaligned, ENOMEM unmapped or outside user space, EFAULT for the vector.
fn mincore_residency(_: &Ctx) -> Outcome {
    // Three pages with nothing mapped above them.
    let m = map(4 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    unmap(m + 3 * P, P)?;
    ensure!(resident(m, 3)? == bits(&[0, 0, 0]), "untouched: {:?}", resident(m, 3)?);
    let _ = get(m + P);
    put(m + 2 * P, 1);
    let got = resident(m, 3)?;
    ensure!(got == bits(&[0, 1, 1]), "after a read and a write: {got:?}");
    let fd = temp_file(2, b'M')?;
    let f = map(2 * P, MAP_PRIVATE, fd.raw())?;
    ensure!(resident(f, 2)? == bits(&[1, 1]), "file pages: {:?}", resident(f, 2)?);
    let mut vec = [0u8; 4];
    let v = vec.as_mut_ptr() as usize;
    let cases = [
        ("unaligned", sys(MINCORE, [m + 1, P, v, 0, 0]), Err(Errno::EINVAL)),
        ("length 0", sys(MINCORE, [m, 0, v, 0, 0]), Ok(0)),
        ("past the mapping", sys(MINCORE, [m, 4 * P, v, 0, 0]), Err(Errno::ENOMEM)),
        ("kernel range", sys(MINCORE, [KERNEL_ADDR, P, v, 0, 0]), Err(Errno::ENOMEM)),
        ("kernel vector", sys(MINCORE, [m, P, KERNEL_ADDR, 0, 0]), Err(Errno::EFAULT)),
        ("unmapped vector", sys(MINCORE, [m, P, 8, 0, 0]), Err(Errno::EFAULT)),
    ];
    for (what, got, want) in cases {
        ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    }
    unmap(f, 2 * P)?;
    unmap(m, 3 * P)
}

/// A shared file mapping's stores are in the file after msync (and
/// before); flags and ranges are checked as Linux checks them.
fn msync_checks(_: &Ctx) -> Outcome {
    let fd = temp_file(2, b'a')?;
    let m = map(2 * P, MAP_SHARED, fd.raw())?;
    put(m + 5, b'Z');
    sys(MSYNC, [m, 2 * P, MS_SYNC, 0, 0]).ctx("msync(MS_SYNC)")?;
    let mut byte = [0u8; 1];
    let n = sys(PREAD64, [fd.raw() as usize, byte.as_mut_ptr() as usize, 1, 5, 0]);
    ensure!(n == Ok(1) && byte[0] == b'Z', "pread after msync: {n:?} {:?}", byte);
    let hole = map(P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    unmap(hole, P)?;
    let cases = [
        ("MS_ASYNC", sys(MSYNC, [m, P, MS_ASYNC, 0, 0]), Ok(0)),
        ("MS_ASYNC|MS_SYNC", sys(MSYNC, [m, P, MS_ASYNC | MS_SYNC, 0, 0]), Err(Errno::EINVAL)),
        ("flag 8", sys(MSYNC, [m, P, 8, 0, 0]), Err(Errno::EINVAL)),
        ("unaligned", sys(MSYNC, [m + 1, P, MS_SYNC, 0, 0]), Err(Errno::EINVAL)),
        ("length 0", sys(MSYNC, [hole, 0, MS_SYNC, 0, 0]), Ok(0)),
        ("unmapped", sys(MSYNC, [hole, P, MS_SYNC, 0, 0]), Err(Errno::ENOMEM)),
        ("unmapped, async", sys(MSYNC, [hole, P, MS_ASYNC, 0, 0]), Err(Errno::ENOMEM)),
        ("wrapping", sys(MSYNC, [m, usize::MAX - P, MS_SYNC, 0, 0]), Err(Errno::ENOMEM)),
        ("MS_INVALIDATE", sys(MSYNC, [m, P, MS_INVALIDATE, 0, 0]), Ok(0)),
    ];
    for (what, got, want) in cases {
        ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    }
    sys(MLOCK, [m, P, 0, 0, 0]).ctx("mlock")?;
    let e = sys(MSYNC, [m, 2 * P, MS_INVALIDATE, 0, 0]);
    ensure!(e == Err(Errno::EBUSY), "MS_INVALIDATE of locked memory: {e:?}");
    sys(MUNLOCK, [m, P, 0, 0, 0]).ctx("munlock")?;
    unmap(m, 2 * P)
}

/// mlock makes pages resident; without CAP_IPC_LOCK it stays within
/// RLIMIT_MEMLOCK (ENOMEM past it, EPERM with a limit of 0); the flags
/// of mlock2 and mlockall are checked; an unmapped range is ENOMEM.
fn mlock_limits(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let w_raw = w.raw();
    let child = Child::spawn(|| match mlock_unprivileged() {
        Ok(()) => 0,
        Err(m) => {
            let _ = write_all(w_raw, m.as_str().as_bytes());
            1
        }
    })?;
    drop(w);
    let status = child.wait_bounded("mlock child")?;
    if !(status.exited() && status.exit_status() == 0) {
        let mut text = [0u8; 200];
        let n = read_full(r.raw(), &mut text)?;
        return Err(msg!("{}", core::str::from_utf8(&text[..n]).unwrap_or("?")));
    }
    Ok(())
}

fn mlock_unprivileged() -> Outcome {
    let limit = Rlimit { cur: 2 * P as u64, max: 2 * P as u64 };
    cred::setrlimit(RLIMIT_MEMLOCK, limit).ctx("setrlimit(RLIMIT_MEMLOCK)")?;
    let m = map(4 * P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    // Root may lock past the limit (CAP_IPC_LOCK).
    sys(MLOCK, [m, 4 * P, 0, 0, 0]).ctx("mlock as root")?;
    ensure!(resident(m, 4)? == bits(&[1, 1, 1, 1]), "after mlock: {:?}", resident(m, 4)?);
    sys(MUNLOCK, [m, 4 * P, 0, 0, 0]).ctx("munlock")?;
    cred::setuid(4321).ctx("setuid")?;
    let hole = map(P, MAP_PRIVATE | MAP_ANONYMOUS, -1)?;
    unmap(hole, P)?;
    let cases = [
        ("mlock 2 pages", sys(MLOCK, [m, 2 * P, 0, 0, 0]), Ok(0)),
        ("again, unaligned", sys(MLOCK, [m + 5, P, 0, 0, 0]), Ok(0)),
        ("a third page", sys(MLOCK, [m + 2 * P, P, 0, 0, 0]), Err(Errno::ENOMEM)),
        ("mlock2 flag 2", sys(MLOCK2, [m, P, 2, 0, 0]), Err(Errno::EINVAL)),
        ("mlockall(0)", sys(MLOCKALL, [0, 0, 0, 0, 0]), Err(Errno::EINVAL)),
        ("mlockall(MCL_ONFAULT)", sys(MLOCKALL, [MCL_ONFAULT, 0, 0, 0, 0]), Err(Errno::EINVAL)),
        ("mlockall(MCL_CURRENT)", sys(MLOCKALL, [MCL_CURRENT, 0, 0, 0, 0]), Err(Errno::ENOMEM)),
        ("munlock 1 page", sys(MUNLOCK, [m + P, P, 0, 0, 0]), Ok(0)),
        ("mlock2 of the third", sys(MLOCK2, [m + 2 * P, P, 0, 0, 0]), Ok(0)),
        ("munlockall", sys(MUNLOCKALL, [0, 0, 0, 0, 0]), Ok(0)),
        ("mlock of a hole", sys(MLOCK, [hole, P, 0, 0, 0]), Err(Errno::ENOMEM)),
    ];
    for (what, got, want) in cases {
        ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    }
    let none = Rlimit { cur: 0, max: 0 };
    cred::setrlimit(RLIMIT_MEMLOCK, none).ctx("setrlimit 0")?;
    let e = sys(MLOCK, [m, P, 0, 0, 0]);
    ensure!(e == Err(Errno::EPERM), "mlock with RLIMIT_MEMLOCK 0: {e:?}");
    let e = sys(MADVISE, [m, P, MADV_DONTNEED, 0, 0]);
    ensure!(e == Ok(0), "MADV_DONTNEED after munlockall: {e:?}");
    unmap(m, 4 * P)
}

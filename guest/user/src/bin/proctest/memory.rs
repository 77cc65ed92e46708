//! Memory: `mmap`/`munmap`, mmap hints, no-execute pages, `mprotect`,
//! `brk`.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("mmap-munmap", mmap_munmap),
    ("mmap-hint-honoured", mmap_hint_honoured),
    ("nx-data-page", nx_data_page),
    ("mprotect-readonly", mprotect_readonly),
    ("brk-grow", brk_grow),
];

/// Anonymous memory is zero, readable and writable; after `munmap` a child
/// touching it dies of `SIGSEGV`.
fn mmap_munmap(_: &Ctx) -> Outcome {
    let map = Mapping::new(2 * PAGE)?;
    ensure!(
        map.addr() % PAGE == 0,
        "mmap returned unaligned {:#x}",
        map.addr()
    );
    for i in (0..2 * PAGE).step_by(61) {
        ensure!(map.get(i) == 0, "fresh anonymous memory not zero at +{i}");
        map.set(i, i as u8 ^ 0x6c);
    }
    for i in (0..2 * PAGE).step_by(61) {
        ensure!(map.get(i) == i as u8 ^ 0x6c, "read back differs at +{i}");
    }
    let addr = map.unmap()?;
    let child = Child::spawn(|| {
        peek(addr + PAGE + 8);
        0
    })?;
    let status = child.wait_bounded("touching unmapped memory")?;
    expect_signal("child reading an unmapped page", status, SIGSEGV)
}

/// A free address given as mmap's hint (no MAP_FIXED) is where the mapping
/// goes, also far above where mmap places mappings by itself (1 TiB:
/// above the guest's default mmap area, inside Linux's).
fn mmap_hint_honoured(_: &Ctx) -> Outcome {
    const HINT: usize = 1 << 40;
    use forkvm_user::syscall::{MAP_ANONYMOUS, MAP_PRIVATE};
    // SAFETY: without MAP_FIXED the kernel replaces no existing mapping.
    let got = unsafe {
        forkvm_user::syscall::mmap(
            HINT,
            PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .ctx("mmap(hint)")?;
    let map = Mapping {
        ptr: got,
        len: PAGE,
    };
    ensure!(
        map.addr() == HINT,
        "mmap with the free hint {HINT:#x} returned {:#x}",
        map.addr()
    );
    map.set(8, 0x5a);
    ensure!(
        map.get(8) == 0x5a,
        "read back at the hinted mapping differs"
    );
    map.unmap()?;
    Ok(())
}

/// Code placed in a page mapped without `PROT_EXEC` does not run: a child
/// that jumps there dies of `SIGSEGV` (no-execute pages); after
/// `mprotect(PROT_READ | PROT_EXEC)` the same code runs.
fn nx_data_page(_: &Ctx) -> Outcome {
    // mov eax, 42; ret
    const CODE: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];
    let map = Mapping::new(PAGE)?;
    for (i, byte) in CODE.iter().enumerate() {
        map.set(i, *byte);
    }
    let addr = map.addr();
    let child = Child::spawn(|| {
        // SAFETY: deliberately calls into a non-executable page: the fetch
        // faults and the child dies before anything runs.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(addr) };
        f() as i32
    })?;
    let status = child.wait_bounded("running code from a data page")?;
    expect_signal(
        "child calling into a PROT_READ|PROT_WRITE page",
        status,
        SIGSEGV,
    )?;
    // SAFETY: the page holds the complete function above.
    unsafe { mprotect(map.ptr, PAGE, PROT_READ | PROT_EXEC) }
        .ctx("mprotect(PROT_READ|PROT_EXEC)")?;
    // SAFETY: now executable; the function follows the C ABI.
    let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(addr) };
    ensure!(f() == 42, "the code did not run after PROT_EXEC");
    Ok(())
}

/// A page made `PROT_READ` can be read (by the parent and a child) but a
/// child writing it dies of `SIGSEGV`, and the contents stay.
fn mprotect_readonly(_: &Ctx) -> Outcome {
    let map = Mapping::new(PAGE)?;
    map.set(0, 0xa5);
    map.set(PAGE - 1, 0x5a);
    // SAFETY: only read from here on (the writer is a child that dies).
    unsafe { mprotect(map.ptr, PAGE, PROT_READ) }.ctx("mprotect(PROT_READ)")?;
    ensure!(
        map.get(0) == 0xa5 && map.get(PAGE - 1) == 0x5a,
        "read-only page lost its contents"
    );
    let addr = map.addr();
    let child = Child::spawn(|| {
        if peek(addr) != 0xa5 {
            return 1;
        }
        // SAFETY: our copy of a read-only page: the write faults.
        unsafe { poke(addr + 16, 1) };
        0
    })?;
    let status = child.wait_bounded("writing a read-only page")?;
    ensure!(
        status != WaitStatus(1 << 8),
        "child could not read the read-only page"
    );
    expect_signal("child writing a PROT_READ page", status, SIGSEGV)?;
    ensure!(
        map.get(0) == 0xa5 && map.get(16) == 0,
        "read-only page changed"
    );
    Ok(())
}

/// `brk` grows the heap by 64 KiB (writable), shrinks it back (the memory
/// above is gone) and grows it again (fresh pages are zero).
fn brk_grow(_: &Ctx) -> Outcome {
    const GROW: usize = 64 * 1024;
    // SAFETY: 0 only queries the break.
    let cur = unsafe { brk(0) };
    ensure!(
        cur != 0 && cur < 0x7fff_ffff_f000,
        "brk(0) returned {cur:#x}"
    );
    let end = cur + GROW;
    // SAFETY: growing maps fresh memory nobody uses.
    let got = unsafe { brk(end) };
    ensure!(got == end, "brk({end:#x}) returned {got:#x}");
    for addr in cur..end {
        // SAFETY: [cur, end) is the heap memory brk just gave us.
        unsafe { (addr as *mut u8).write_volatile(addr as u8 ^ 0x3c) };
    }
    for addr in cur..end {
        // SAFETY: as above.
        let byte = unsafe { (addr as *const u8).read_volatile() };
        ensure!(byte == addr as u8 ^ 0x3c, "heap byte at {addr:#x} differs");
    }
    // SAFETY: nothing uses the memory above `cur`.
    let got = unsafe { brk(cur) };
    ensure!(got == cur, "shrinking: brk({cur:#x}) returned {got:#x}");
    let probe = cur + GROW / 2;
    let child = Child::spawn(|| {
        peek(probe);
        0
    })?;
    let status = child.wait_bounded("touching memory above the break")?;
    expect_signal("child reading above the lowered break", status, SIGSEGV)?;
    // SAFETY: growing again maps fresh memory.
    let got = unsafe { brk(end) };
    ensure!(got == end, "growing again: brk({end:#x}) returned {got:#x}");
    let fresh = peek(probe);
    // SAFETY: nothing uses the memory above `cur`.
    let back = unsafe { brk(cur) };
    ensure!(
        fresh == 0,
        "regrown heap at {probe:#x}: expected 0, got {fresh:#x}"
    );
    ensure!(
        back == cur,
        "shrinking again: brk({cur:#x}) returned {back:#x}"
    );
    Ok(())
}

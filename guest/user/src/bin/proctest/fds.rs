//! Descriptors: pipes, `dup2`, and a descriptor table shared by
//! `CLONE_FILES`.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("pipe-basic", pipe_basic),
    ("dup2-basic", dup2_basic),
    ("files-shared-by-thread", files_shared_by_thread),
];

/// A child writes 100 bytes into a pipe and exits; the parent, having closed
/// its write end, reads all of them and then end of file.
fn pipe_basic(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let data: [u8; 100] = core::array::from_fn(|i| (i * 3 + 1) as u8);
    let child = Child::spawn(|| {
        let _ = close(r.raw());
        match write_all(w.raw(), &data) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })?;
    w.close()?;
    let mut buf = [0u8; 100];
    let n = read_full(r.raw(), &mut buf)?;
    ensure!(n == 100, "read {n} of the child's 100 bytes before EOF");
    ensure!(buf == data, "the 100 bytes read differ from those written");
    let mut more = [0u8; 1];
    let eof = read(r.raw(), &mut more);
    ensure!(
        eof == Ok(0),
        "read after all data, writers closed: expected 0 (EOF), got {eof:?}"
    );
    expect_exit("writer child", child.wait()?, 0)
}

/// `dup2` of a pipe's write end to fd 10: writes through 10 arrive; the pipe
/// stays open for writing until 10 is closed too.
fn dup2_basic(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let target = if r.raw() == 10 || w.raw() == 10 {
        11
    } else {
        10
    };
    let got = dup2(w.raw(), target).ctx("dup2")?;
    ensure!(got == target, "dup2(w, {target}) returned {got}");
    let ten = Fd(got);
    write_all(ten.raw(), b"via ten").ctx("write(fd 10)")?;
    w.close()?;
    write_all(ten.raw(), b"!").ctx("write(fd 10) after closing the original")?;
    ten.close()?;
    let mut buf = [0u8; 16];
    let n = read_full(r.raw(), &mut buf)?;
    ensure!(
        &buf[..n] == b"via ten!",
        "read \"{}\" through the pipe, expected \"via ten!\" then EOF",
        Bytes(&buf[..n])
    );
    Ok(())
}

/// The `files-shared-by-thread` thread: closes the fd in `result` and stores
/// the outcome there (0 or -errno).
extern "C" fn thread_closes_fd(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadReport = unsafe { shared(arg) };
    let fd = report.result.load(Ordering::Relaxed);
    let outcome = match close(fd) {
        Ok(()) => 0,
        Err(e) => -e.0,
    };
    report.result.store(outcome, Ordering::Relaxed);
    exit(0)
}

/// A `CLONE_FILES` thread's `close` closes the creator's fd; a forked
/// child's does not.
fn files_shared_by_thread(_: &Ctx) -> Outcome {
    ensure!(
        THREAD_FLAGS & CLONE_FILES != 0,
        "THREAD_FLAGS lack CLONE_FILES"
    );
    let (r, w) = pipe()?;
    let stack = ThreadStack::new()?;
    let report = ThreadReport::default();
    report.result.store(r.raw(), Ordering::Relaxed);
    // SAFETY: as in thread_shares_mm.
    unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_closes_fd,
            &report as *const ThreadReport as usize,
        )
    }
    .ctx("clone(thread)")?;
    stack.join()?;
    let closed = report.result.load(Ordering::Relaxed);
    ensure!(closed == 0, "thread's close(fd): {}", Errno(-closed));
    let fd = r.into_raw();
    let after = close(fd);
    ensure!(
        after == Err(Errno::EBADF),
        "close({fd}) after a CLONE_FILES thread closed it: expected EBADF, got {after:?}"
    );
    drop(w);

    let (r, w) = pipe()?;
    let child = Child::spawn(|| match close(r.raw()) {
        Ok(()) => 0,
        Err(_) => 1,
    })?;
    expect_exit("forked child's close", child.wait()?, 0)?;
    write_all(w.raw(), b"k").ctx("write(pipe)")?;
    let mut buf = [0u8; 1];
    let n = read(r.raw(), &mut buf);
    ensure!(
        n == Ok(1) && buf == *b"k",
        "read from our pipe after a forked child closed its copy: {n:?}"
    );
    r.close()?;
    w.close()
}

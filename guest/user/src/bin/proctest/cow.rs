//! Copy-on-write after `fork`: `.data` and anonymous pages written by the
//! parent or the child stay private to the writer.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("cow-parent-write", cow_parent_write),
    ("cow-child-write", cow_child_write),
    ("cow-many-pages", cow_many_pages),
];

/// A word in `.data`: private file-backed memory in the ELF image, which
/// `fork` must copy on write just like anonymous memory.
static DATA_WORD: AtomicU64 = AtomicU64::new(0x0123_4567_89ab_cdef);
const DATA_OLD: u64 = 0x0123_4567_89ab_cdef;
const DATA_NEW: u64 = 0xfeed_face_dead_beef;

/// The parent changes a `.data` word and an anonymous page after `fork`;
/// the child, told by a pipe once that is done, must still see the old ones.
fn cow_parent_write(_: &Ctx) -> Outcome {
    DATA_WORD.store(DATA_OLD, Ordering::Relaxed);
    let page = Mapping::new(PAGE)?;
    page.set(100, 0x11);
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let mut go = [0u8; 1];
        if read(r.raw(), &mut go) != Ok(1) {
            return 3;
        }
        if DATA_WORD.load(Ordering::Relaxed) != DATA_OLD {
            return 1;
        }
        if page.get(100) != 0x11 {
            return 2;
        }
        0
    })?;
    DATA_WORD.store(DATA_NEW, Ordering::Relaxed);
    page.set(100, 0x22);
    write_all(w.raw(), b"g").ctx("write(pipe)")?;
    let status = child.wait()?;
    ensure!(
        status != WaitStatus(1 << 8),
        "child saw the parent's write to a .data word after fork"
    );
    ensure!(
        status != WaitStatus(2 << 8),
        "child saw the parent's write to an anonymous page after fork"
    );
    expect_exit("child", status, 0)?;
    ensure!(
        DATA_WORD.load(Ordering::Relaxed) == DATA_NEW && page.get(100) == 0x22,
        "parent lost its own writes"
    );
    Ok(())
}

/// The child changes a `.data` word and an anonymous page; after reaping
/// it, the parent must still see its own values.
fn cow_child_write(_: &Ctx) -> Outcome {
    DATA_WORD.store(DATA_OLD, Ordering::Relaxed);
    let page = Mapping::new(PAGE)?;
    page.set(200, 0x33);
    let child = Child::spawn(|| {
        DATA_WORD.store(DATA_NEW, Ordering::Relaxed);
        page.set(200, 0x44);
        let seen = DATA_WORD.load(Ordering::Relaxed) == DATA_NEW && page.get(200) == 0x44;
        if seen {
            0
        } else {
            1
        }
    })?;
    let status = child.wait()?;
    ensure!(
        status != WaitStatus(1 << 8),
        "child did not see its own writes"
    );
    expect_exit("child", status, 0)?;
    let word = DATA_WORD.load(Ordering::Relaxed);
    ensure!(
        word == DATA_OLD,
        ".data word: expected {DATA_OLD:#x} after the child wrote, got {word:#x}"
    );
    let byte = page.get(200);
    ensure!(
        byte == 0x33,
        "anonymous page: expected 0x33 after the child wrote, got {byte:#x}"
    );
    Ok(())
}

const COW_PAGES: usize = 64;

fn cow_pattern(seed: u8, page: usize, offset: usize) -> u8 {
    (seed as usize + page * 131 + offset * 7 + offset / 251) as u8
}

/// The status the `cow-many-pages` child exits with when all is well:
/// 1..=250, from the sum of every byte of pattern `seed`.
fn cow_checksum_status(seed: u8) -> i32 {
    let mut sum = 0u64;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            sum += u64::from(cow_pattern(seed, page, offset));
        }
    }
    1 + (sum % 250) as i32
}

/// The child of `cow-many-pages`: checks the parent's pattern on every page,
/// rewrites every page, and exits with the checksum of what it reads back
/// (255: the parent's pattern was wrong; 254: its own writes did not stick).
fn cow_many_child(map: &Mapping) -> i32 {
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            if map.get(page * PAGE + offset) != cow_pattern(1, page, offset) {
                return 255;
            }
        }
    }
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            map.set(page * PAGE + offset, cow_pattern(2, page, offset));
        }
    }
    let mut sum = 0u64;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            let byte = map.get(page * PAGE + offset);
            if byte != cow_pattern(2, page, offset) {
                return 254;
            }
            sum += u64::from(byte);
        }
    }
    1 + (sum % 250) as i32
}

/// A 64-page buffer: the child rewrites every page; the parent's pages keep
/// their contents, and then the parent can rewrite all of them.
fn cow_many_pages(_: &Ctx) -> Outcome {
    let map = Mapping::new(COW_PAGES * PAGE)?;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            map.set(page * PAGE + offset, cow_pattern(1, page, offset));
        }
    }
    let child = Child::spawn(|| cow_many_child(&map))?;
    let status = child.wait()?;
    ensure!(
        status != WaitStatus(255 << 8),
        "child did not see the parent's contents"
    );
    ensure!(
        status != WaitStatus(254 << 8),
        "child's writes did not stick"
    );
    expect_exit("child's checksum", status, cow_checksum_status(2))?;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            let byte = map.get(page * PAGE + offset);
            let want = cow_pattern(1, page, offset);
            ensure!(
                byte == want,
                "parent's page {page} offset {offset}: expected {want:#x}, got {byte:#x} after the child wrote"
            );
        }
    }
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            map.set(page * PAGE + offset, cow_pattern(3, page, offset));
        }
    }
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            let byte = map.get(page * PAGE + offset);
            let want = cow_pattern(3, page, offset);
            ensure!(
                byte == want,
                "parent's rewrite of page {page} offset {offset}: expected {want:#x}, got {byte:#x}"
            );
        }
    }
    Ok(())
}

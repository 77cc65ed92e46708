//! `read` and `write` on the console (file descriptors 0, 1, 2).

use alloc::vec;

use super::{current_mm, Args, SysResult};
use crate::drivers::uart::{INPUT, INPUT_WAIT};
use crate::errno::EBADF;

/// Largest chunk copied from user memory at a time.
const CHUNK: usize = 4096;

pub fn write(a: Args) -> SysResult {
    let [fd, buf, count, ..] = a.0;
    if fd != 1 && fd != 2 {
        return Err(EBADF);
    }
    let mm = current_mm()?;
    let mut done = 0;
    let mut chunk = vec![0u8; CHUNK.min(count as usize)];
    while done < count {
        let n = (count - done).min(CHUNK as u64) as usize;
        if let Err(e) = mm.copy_from_user(buf + done, &mut chunk[..n]) {
            // Linux returns what it wrote before the bad byte, else EFAULT.
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        crate::console::write_text(&chunk[..n]);
        done += n as u64;
    }
    Ok(done)
}

pub fn read(a: Args) -> SysResult {
    let [fd, buf, count, ..] = a.0;
    if fd != 0 {
        return Err(EBADF);
    }
    if count == 0 {
        return Ok(0);
    }
    let mm = current_mm()?;
    // Block for the first byte, then take what is there.
    INPUT_WAIT.wait_until(|| !INPUT.is_empty());
    let mut bytes = vec![];
    while (bytes.len() as u64) < count {
        match INPUT.pop() {
            Some(byte) => bytes.push(byte),
            None => break,
        }
    }
    mm.copy_to_user(buf, &bytes)?;
    Ok(bytes.len() as u64)
}

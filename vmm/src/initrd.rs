//! The initramfs: `forkvm --initrd FILE` reads a cpio archive (newc,
//! plain or gzip-compressed, as Linux accepts), decompresses it if needed
//! and places it at the top of the low RAM region, which the kernel is then
//! told is not RAM (so its frame allocator never hands those pages out).
//! The guest parses the archive (`guest/core/src/fs/cpio.rs`) and reports a
//! corrupt one itself, with the byte offset.
//!
//! Why decompress here rather than in the guest as Linux does: the guest
//! keeps the archive's pages reserved for good (its allocator has no way
//! to take a range back yet), so decompressing on the host costs it no
//! extra memory or code, and a damaged gzip stream is reported before the
//! VM is built, as one line.

use std::io::Read;
use std::path::Path;

use forkvm_abi::{MemRegion, MAX_MEM_REGIONS, MIN_GUEST_MEMORY, PAGE_SIZE};

use crate::error::{Error, Result};

/// gzip's magic bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the archive at `path`, decompressed.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let file_error = |e| Error::InitrdFile(path.to_path_buf(), e);
    if std::fs::metadata(path).map_err(file_error)?.is_dir() {
        return Err(Error::InitrdFormat(
            path.to_path_buf(),
            "it is a directory".into(),
        ));
    }
    let raw = std::fs::read(path).map_err(file_error)?;
    decompress(&raw).map_err(|why| Error::InitrdFormat(path.to_path_buf(), why))
}

/// `raw` itself, or its gzip members decompressed and concatenated.
pub fn decompress(raw: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad gzip data: {e}"))?;
    Ok(out)
}

/// Where the archive goes: the RAM regions the kernel may use (the first
/// one shortened by the archive's pages) and the archive's address.
/// Refuses an archive that would leave the kernel less than
/// `MIN_GUEST_MEMORY` of that region.
pub fn place(
    regions: &[MemRegion; MAX_MEM_REGIONS],
    size: u64,
) -> Result<([MemRegion; MAX_MEM_REGIONS], u64)> {
    let low = regions[0];
    let pages = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let room = low.len.saturating_sub(MIN_GUEST_MEMORY);
    if pages > room {
        return Err(Error::InitrdTooLarge {
            size,
            max: room,
            memory: regions.iter().map(|r| r.len).sum(),
        });
    }
    let mut kept = *regions;
    kept[0].len -= pages;
    Ok((kept, low.start + kept[0].len))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn plain_archives_pass_and_gzip_ones_are_inflated() {
        assert_eq!(decompress(b"070701abc").unwrap(), b"070701abc");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"070701hello").unwrap();
        let mut both = gz.finish().unwrap();
        // Two members, as `cat a.gz b.gz` makes.
        both.extend_from_slice(&both.clone());
        assert_eq!(decompress(&both).unwrap(), b"070701hello070701hello");
        let err = decompress(&both[..both.len() / 3]).unwrap_err();
        assert!(err.contains("bad gzip data"), "{err}");
    }

    #[test]
    fn placed_at_the_top_of_low_ram() {
        let (regions, _) = forkvm_abi::ram_regions(64 << 20);
        let (kept, phys) = place(&regions, 5000).unwrap();
        assert_eq!(kept[0].len, (64 << 20) - 8192);
        assert_eq!(phys, (64 << 20) - 8192);
        assert!(place(&regions, 48 << 20).is_ok());
        let err = place(&regions, (48 << 20) + 1).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }
}

//! Parsing the ELF executables that `execve` loads: x86-64 programs at a
//! fixed address (ET_EXEC) or position independent (ET_DYN: PIE programs,
//! static-PIE ones and the dynamic loader itself), with their
//! interpreter's path (PT_INTERP) when they are dynamically linked.

use alloc::vec::Vec;

use crate::errno::ENOEXEC;

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
pub const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// Longest interpreter path, NUL included (Linux `PATH_MAX`).
const INTERP_MAX: u64 = 4096;

/// One loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// A parsed executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Address of the program headers in memory (for AT_PHDR), if loaded.
    pub phdr_vaddr: Option<u64>,
    pub phnum: u16,
    /// Position independent (ET_DYN): every address above is relative to
    /// a load bias the loader chooses.
    pub position_independent: bool,
    /// The program interpreter's path (PT_INTERP, without its NUL).
    pub interpreter: Option<Vec<u8>>,
}

impl Executable {
    /// The page-aligned range `[start, end)` the segments cover (before
    /// the load bias).
    pub fn span(&self) -> (u64, u64) {
        let page = 4096;
        let start = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let end = self
            .segments
            .iter()
            .map(|s| s.vaddr + s.mem_size)
            .max()
            .unwrap_or(0);
        (start / page * page, end.div_ceil(page) * page)
    }
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// How much of the start of a file [`parse`] reads: the program headers
/// and the interpreter's path must lie within it.
pub const HEADER_MAX: usize = 64 * 1024;

/// Parses the start of an executable (`image`, the first bytes of a file
/// of `file_size` bytes), accepting only what this kernel can run: an
/// x86-64 ELF executable or shared object whose segments fit below
/// `user_end` (at their addresses for ET_EXEC, as a whole for ET_DYN).
/// Anything else is `ENOEXEC`, as Linux reports for a format it cannot
/// load.
pub fn parse(image: &[u8], file_size: u64, user_end: u64) -> Result<Executable, i32> {
    parse_inner(image, file_size, user_end).ok_or(ENOEXEC)
}

fn parse_inner(image: &[u8], file_size: u64, user_end: u64) -> Option<Executable> {
    if image.len() < EHDR_SIZE
        || image[0..4] != ELF_MAGIC
        || image[4] != ELFCLASS64
        || image[5] != ELFDATA2LSB
    {
        return None;
    }
    let position_independent = match u16_at(image, 16)? {
        ET_EXEC => false,
        ET_DYN => true,
        _ => return None,
    };
    if u16_at(image, 18)? != EM_X86_64 {
        return None;
    }
    let entry = u64_at(image, 24)?;
    let phoff = u64_at(image, 32)? as usize;
    let phentsize = u16_at(image, 54)? as usize;
    let phnum = u16_at(image, 56)?;
    if phentsize != PHDR_SIZE || phnum == 0 || phnum > 64 {
        return None;
    }
    let mut segments = Vec::new();
    let mut phdr_vaddr = None;
    let mut phdr_segment = None;
    let mut interpreter = None;
    for i in 0..usize::from(phnum) {
        let at = phoff.checked_add(i.checked_mul(PHDR_SIZE)?)?;
        let header = image.get(at..at.checked_add(PHDR_SIZE)?)?;
        let kind = u32_at(header, 0)?;
        if kind == PT_INTERP && interpreter.is_none() {
            // Linux: 2..=PATH_MAX bytes ending in a NUL.
            let (offset, size) = (u64_at(header, 8)?, u64_at(header, 32)?);
            if !(2..=INTERP_MAX).contains(&size) {
                return None;
            }
            let path = image.get(offset as usize..offset.checked_add(size)? as usize)?;
            let (&last, path) = path.split_last()?;
            if last != 0 {
                return None;
            }
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            interpreter = Some(path[..end].to_vec());
            continue;
        }
        if kind == PT_PHDR {
            phdr_segment = Some(u64_at(header, 16)?);
            continue;
        }
        if kind != PT_LOAD {
            continue;
        }
        let flags = u32_at(header, 4)?;
        let segment = Segment {
            file_offset: u64_at(header, 8)?,
            vaddr: u64_at(header, 16)?,
            file_size: u64_at(header, 32)?,
            mem_size: u64_at(header, 40)?,
            read: flags & PF_R != 0,
            write: flags & PF_W != 0,
            execute: flags & PF_X != 0,
        };
        let file_end = segment.file_offset.checked_add(segment.file_size)?;
        let mem_end = segment.vaddr.checked_add(segment.mem_size)?;
        if segment.file_size > segment.mem_size || file_end > file_size || mem_end > user_end {
            return None;
        }
        if segment.vaddr < 4096 && !position_independent {
            return None; // page zero stays unmapped
        }
        // mmap needs the file offset and the address equal modulo a page.
        if segment.vaddr % 4096 != segment.file_offset % 4096 {
            return None;
        }
        if phoff as u64 >= segment.file_offset && (phoff as u64) < file_end {
            phdr_vaddr = Some(segment.vaddr + (phoff as u64 - segment.file_offset));
        }
        if segment.mem_size > 0 {
            segments.push(segment);
        }
    }
    let entry_mapped = segments
        .iter()
        .any(|s| s.execute && entry >= s.vaddr && entry < s.vaddr + s.mem_size);
    if segments.is_empty() || !entry_mapped {
        return None;
    }
    Some(Executable {
        entry,
        segments,
        phdr_vaddr: phdr_segment.or(phdr_vaddr),
        phnum,
        position_independent,
        interpreter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid image: one RX segment at 0x400000 holding the headers.
    fn image() -> Vec<u8> {
        let mut data = vec![0u8; 0x200];
        data[0..4].copy_from_slice(&ELF_MAGIC);
        data[4] = ELFCLASS64;
        data[5] = ELFDATA2LSB;
        data[6] = 1;
        data[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        data[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        data[24..32].copy_from_slice(&0x400100u64.to_le_bytes());
        data[32..40].copy_from_slice(&64u64.to_le_bytes());
        data[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        data[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        data[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        data[ph + 4..ph + 8].copy_from_slice(&(PF_R | PF_X).to_le_bytes());
        data[ph + 16..ph + 24].copy_from_slice(&0x400000u64.to_le_bytes());
        data[ph + 32..ph + 40].copy_from_slice(&0x200u64.to_le_bytes());
        data[ph + 40..ph + 48].copy_from_slice(&0x1000u64.to_le_bytes());
        data
    }

    #[test]
    fn parses_a_static_executable() {
        let exe = parse(&image(), 0x200, 0x4000_0000_0000).unwrap();
        assert_eq!(exe.entry, 0x400100);
        assert_eq!(exe.segments.len(), 1);
        assert_eq!(exe.phdr_vaddr, Some(0x400040));
        let s = exe.segments[0];
        assert!(s.read && s.execute && !s.write);
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let mut bad = image();
        bad[0] = 0;
        assert_eq!(parse(&bad, 0x200, 0x4000_0000_0000), Err(ENOEXEC));
        let mut core = image();
        core[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
        assert_eq!(parse(&core, 0x200, 0x4000_0000_0000), Err(ENOEXEC));
        assert_eq!(
            parse(&image(), 0x1ff, 0x4000_0000_0000),
            Err(ENOEXEC),
            "past the file"
        );
        // A segment reaching into the kernel's half.
        assert_eq!(parse(&image(), 0x200, 0x400800), Err(ENOEXEC));
        // Truncated file.
        assert_eq!(parse(&image()[..100], 100, 0x4000_0000_0000), Err(ENOEXEC));
        let mut outside = image();
        outside[24..32].copy_from_slice(&0x900000u64.to_le_bytes());
        assert_eq!(
            parse(&outside, 0x200, 0x4000_0000_0000),
            Err(ENOEXEC),
            "entry outside the code"
        );
    }

    /// `image()` made position independent at 0 with a PT_INTERP.
    fn pie(interp: &[u8]) -> Vec<u8> {
        let mut data = image();
        data[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        data[24..32].copy_from_slice(&0x100u64.to_le_bytes());
        data[56..58].copy_from_slice(&2u16.to_le_bytes());
        data[64 + 16..64 + 24].copy_from_slice(&0u64.to_le_bytes());
        let ph = 64 + PHDR_SIZE;
        data[ph..ph + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
        data[ph + 8..ph + 16].copy_from_slice(&0x1c0u64.to_le_bytes());
        data[ph + 32..ph + 40].copy_from_slice(&(interp.len() as u64).to_le_bytes());
        data[0x1c0..0x1c0 + interp.len()].copy_from_slice(interp);
        data
    }

    #[test]
    fn parses_a_pie_with_its_interpreter() {
        let exe = parse(&pie(b"/lib/ld.so\0"), 0x200, 0x4000_0000_0000).unwrap();
        assert!(exe.position_independent);
        assert_eq!(exe.interpreter.as_deref(), Some(&b"/lib/ld.so"[..]));
        assert_eq!((exe.entry, exe.phdr_vaddr), (0x100, Some(0x40)));
        assert_eq!(exe.span(), (0, 0x1000));
        // Linux wants the path NUL-terminated and at least 2 bytes long.
        for bad in [&b"/lib/ld.so"[..], b"\0", b""] {
            assert_eq!(parse(&pie(bad), 0x200, 0x4000_0000_0000), Err(ENOEXEC));
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 12345u64;
        let base = image();
        for _ in 0..5000 {
            let mut data = base.clone();
            for _ in 0..8 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % data.len();
                data[at] = (seed >> 13) as u8;
            }
            let _ = parse(&data, data.len() as u64, 0x4000_0000_0000);
        }
    }
}

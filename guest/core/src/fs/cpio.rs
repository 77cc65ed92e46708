//! The initramfs archive format: cpio "newc" (magic `070701`, or `070702`
//! with checksums, which Linux accepts without checking them either), as
//! Linux's `init/initramfs.c` reads it. Pure: the parser walks a byte
//! slice and never panics; a damaged archive is an [`ArchiveError`] with
//! the byte offset and what was wrong there.
//!
//! Each entry: a 110-byte header (the magic and 13 fields of 8 hex digits),
//! the NUL-terminated name, padding to 4 bytes, the data, padding to 4
//! bytes. The entry named `TRAILER!!!` ends an archive; zero bytes may
//! pad it, and another archive may follow (Linux reads them all).

use core::fmt;

/// Header size in bytes.
const HEADER_LEN: usize = 110;
/// Longest name, NUL included (Linux `PATH_MAX`).
const NAME_MAX_LEN: usize = 4096;
const TRAILER: &[u8] = b"TRAILER!!!";

/// One archive member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Offset of its header in the archive.
    pub offset: usize,
    /// The path, without its NUL (usually relative, e.g. `bin/sh`).
    pub name: &'a [u8],
    /// Type and permission bits (`S_IFMT | 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Link count; with `ino` (and `dev`) it identifies hard links.
    pub nlink: u32,
    pub ino: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub mtime: u32,
    /// The file's bytes (a symlink's target).
    pub data: &'a [u8],
}

/// What was wrong, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveError {
    /// Byte offset in the (decompressed) archive.
    pub offset: usize,
    pub what: Problem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Fewer than 110 bytes left for a header.
    TruncatedHeader,
    /// Not `070701`/`070702` (an old binary or odc cpio, or garbage).
    BadMagic,
    /// A header field that is not 8 hex digits; the field's name.
    BadField(&'static str),
    /// A name size of 0 or past PATH_MAX.
    BadNameSize,
    /// The name runs past the end of the archive.
    NameOverflow,
    /// The name's last byte is not NUL.
    NameNotTerminated,
    /// The data runs past the end of the archive.
    DataOverflow,
    /// The archive ends without a `TRAILER!!!` entry.
    NoTrailer,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt initramfs at byte {}: ", self.offset)?;
        match self.what {
            Problem::TruncatedHeader => write!(f, "truncated header"),
            Problem::BadMagic => write!(f, "bad magic (not a newc cpio archive)"),
            Problem::BadField(name) => write!(f, "header field {name} is not hexadecimal"),
            Problem::BadNameSize => write!(f, "bad name size"),
            Problem::NameOverflow => write!(f, "the name runs past the end of the archive"),
            Problem::NameNotTerminated => write!(f, "the name is not NUL-terminated"),
            Problem::DataOverflow => write!(f, "the file data runs past the end of the archive"),
            Problem::NoTrailer => write!(f, "the archive ends without TRAILER!!!"),
        }
    }
}

/// The members of `archive`, in order, trailers left out; stops at the
/// first error.
pub struct Reader<'a> {
    archive: &'a [u8],
    at: usize,
    /// A trailer was seen and nothing but padding followed yet.
    ended: bool,
    failed: bool,
}

impl<'a> Reader<'a> {
    pub fn new(archive: &'a [u8]) -> Self {
        Reader {
            archive,
            at: 0,
            ended: archive.is_empty(),
            failed: false,
        }
    }

    fn fail(&mut self, offset: usize, what: Problem) -> Option<Result<Entry<'a>, ArchiveError>> {
        self.failed = true;
        Some(Err(ArchiveError { offset, what }))
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn hex_field(header: &[u8], index: usize) -> Option<u32> {
    let digits = &header[6 + index * 8..6 + index * 8 + 8];
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}

const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            // Zero padding (after a trailer, or before an archive) is
            // skipped 4 bytes at a time, as Linux does.
            while self.at < self.archive.len() && self.archive[self.at] == 0 {
                self.at += 4;
            }
            if self.at >= self.archive.len() {
                if self.ended {
                    return None;
                }
                let end = self.archive.len();
                return self.fail(end, Problem::NoTrailer);
            }
            let start = self.at;
            let rest = &self.archive[start..];
            if rest.len() < HEADER_LEN {
                return self.fail(start, Problem::TruncatedHeader);
            }
            let header = &rest[..HEADER_LEN];
            if &header[..6] != b"070701" && &header[..6] != b"070702" {
                return self.fail(start, Problem::BadMagic);
            }
            let mut fields = [0u32; 13];
            for (index, field) in fields.iter_mut().enumerate() {
                match hex_field(header, index) {
                    Some(value) => *field = value,
                    None => {
                        return self.fail(start + 6 + index * 8, Problem::BadField(FIELDS[index]))
                    }
                }
            }
            let [ino, mode, uid, gid, nlink, mtime, file_size, dev_major, dev_minor, rdev_major, rdev_minor, name_size, _check] =
                fields;
            let name_size = name_size as usize;
            if name_size == 0 || name_size > NAME_MAX_LEN {
                return self.fail(start + 6 + 11 * 8, Problem::BadNameSize);
            }
            let name_start = start + HEADER_LEN;
            let name_end = name_start + name_size;
            if name_end > self.archive.len() {
                return self.fail(name_start, Problem::NameOverflow);
            }
            if self.archive[name_end - 1] != 0 {
                return self.fail(name_end - 1, Problem::NameNotTerminated);
            }
            let name = &self.archive[name_start..name_end - 1];
            let data_start = align4(name_end);
            let data_end = data_start as u64 + u64::from(file_size);
            if data_end > self.archive.len() as u64 {
                return self.fail(data_start.min(self.archive.len()), Problem::DataOverflow);
            }
            let data = &self.archive[data_start..data_end as usize];
            self.at = align4(data_end as usize);
            if name == TRAILER {
                self.ended = true;
                continue;
            }
            self.ended = false;
            return Some(Ok(Entry {
                offset: start,
                name,
                mode,
                uid,
                gid,
                nlink,
                ino,
                dev_major,
                dev_minor,
                rdev_major,
                rdev_minor,
                mtime,
                data,
            }));
        }
    }
}

#[cfg(test)]
pub mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// One newc member (test helper, also used by the unpacker's tests).
    pub fn member(out: &mut Vec<u8>, name: &[u8], mode: u32, ino: u32, nlink: u32, data: &[u8]) {
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(alloc::format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name);
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    pub fn trailer(out: &mut Vec<u8>) {
        member(out, TRAILER, 0, 0, 1, b"");
    }

    fn sample() -> Vec<u8> {
        let mut a = Vec::new();
        member(&mut a, b"bin", 0o40755, 1, 2, b"");
        member(&mut a, b"bin/hello", 0o100755, 2, 1, b"hello world\n");
        member(&mut a, b"bin/sh", 0o120777, 3, 1, b"hello");
        trailer(&mut a);
        a
    }

    #[test]
    fn reads_members_in_order() {
        let a = sample();
        let entries: Vec<_> = Reader::new(&a).map(Result::unwrap).collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, b"bin");
        assert_eq!(entries[0].mode, 0o40755);
        assert_eq!(entries[1].data, b"hello world\n");
        assert_eq!(entries[1].offset, 116);
        assert_eq!(entries[2].data, b"hello");
    }

    #[test]
    fn concatenated_and_padded_archives() {
        let mut a = sample();
        a.extend_from_slice(&[0; 512]);
        let mut second = Vec::new();
        member(&mut second, b"etc", 0o40755, 9, 2, b"");
        trailer(&mut second);
        a.extend_from_slice(&second);
        let names: Vec<_> = Reader::new(&a).map(|e| e.unwrap().name).collect();
        assert_eq!(names, [&b"bin"[..], b"bin/hello", b"bin/sh", b"etc"]);
        assert_eq!(Reader::new(&[]).count(), 0);
    }

    fn first_error(a: &[u8]) -> ArchiveError {
        Reader::new(a)
            .find_map(Result::err)
            .expect("an error is reported")
    }

    #[test]
    fn corrupt_archives_report_offset_and_problem() {
        let a = sample();
        // Truncated inside the second header.
        let e = first_error(&a[..116 + 50]);
        assert_eq!((e.offset, e.what), (116, Problem::TruncatedHeader));
        // Bad magic in the second member.
        let mut bad = a.clone();
        bad[116..122].copy_from_slice(b"070707");
        let e = first_error(&bad);
        assert_eq!((e.offset, e.what), (116, Problem::BadMagic));
        // Name size past the end of the archive.
        let mut bad = a.clone();
        bad[116 + 94..116 + 102].copy_from_slice(b"0000ffff");
        let e = first_error(&bad);
        assert_eq!(e.what, Problem::BadNameSize);
        let mut bad = a[..116 + 110 + 5].to_vec();
        bad.truncate(116 + 110 + 5);
        let e = first_error(&bad);
        assert_eq!((e.offset, e.what), (116 + 110, Problem::NameOverflow));
        // File size beyond the archive.
        let mut bad = a.clone();
        bad[116 + 54..116 + 62].copy_from_slice(b"00100000");
        let e = first_error(&bad);
        assert_eq!(e.what, Problem::DataOverflow);
        // Not hex.
        let mut bad = a.clone();
        bad[6 + 8] = b'x';
        let e = first_error(&bad);
        assert_eq!((e.offset, e.what), (14, Problem::BadField("mode")));
        // No trailer.
        let e = first_error(&a[..a.len() - 124]);
        assert_eq!(e.what, Problem::NoTrailer);
        assert_eq!(
            alloc::format!("{}", first_error(&a[..116 + 50])),
            "corrupt initramfs at byte 116: truncated header"
        );
    }

    #[test]
    fn never_panics_on_any_truncation_or_byte_flip() {
        let a = sample();
        for len in 0..a.len() {
            let _ = Reader::new(&a[..len]).count();
        }
        for i in 0..a.len() {
            for byte in [0u8, b'0', b'f', 0xff, b'z'] {
                let mut bad = a.clone();
                bad[i] = byte;
                let _ = Reader::new(&bad).count();
            }
        }
    }
}

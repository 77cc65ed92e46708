//! The programs `exec_static` and `shell` run on the host: the very files
//! the guest runs, taken out of the initramfs given to `forkbench run
//! --initrd` (`/bin/true` and `/bin/sh`, symbolic links inside the archive
//! followed: in Debian's busybox-static both are the one `busybox`), so
//! guest and host time the same binary. They are written to a private
//! temporary directory once per process, removed after the host's part.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The programs of the archive [`use_archive`] was given.
#[derive(Debug)]
pub struct ArchivePrograms {
    /// The archive's `/bin/true`.
    pub true_program: CString,
    /// The archive's `/bin/sh`.
    pub shell: CString,
    /// The temporary directory they were written to.
    dir: PathBuf,
}

static PROGRAMS: OnceLock<Result<ArchivePrograms, String>> = OnceLock::new();

/// Takes `/bin/true` and `/bin/sh` out of the initramfs at `path` (plain
/// or gzip newc cpio) for the host's `exec_static` and `shell`. Only the
/// first call counts; its result is returned again.
pub fn use_archive(path: &Path) -> Result<&'static ArchivePrograms, String> {
    PROGRAMS
        .get_or_init(|| extract(path).map_err(|e| format!("{}: {e}", path.display())))
        .as_ref()
        .map_err(Clone::clone)
}

/// The programs, if [`use_archive`] succeeded.
pub fn programs() -> Option<&'static ArchivePrograms> {
    PROGRAMS.get().and_then(|r| r.as_ref().ok())
}

/// Removes the programs' temporary directory (once the host has run
/// them; [`programs`] still names them, gone).
pub fn remove_extracted() {
    if let Some(programs) = programs() {
        let _ = std::fs::remove_dir_all(&programs.dir);
    }
}

/// One archive member: its mode and contents (a symbolic link's target).
struct Member {
    mode: u32,
    data: Vec<u8>,
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

fn extract(path: &Path) -> Result<ArchivePrograms, String> {
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    let bytes = vmm::initrd::decompress(&raw)?;
    let members = members(&bytes)?;
    let dir = std::env::temp_dir().join(format!("forkbench-initrd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, file: &str| -> Result<CString, String> {
        let data = resolve(&members, name)?;
        let out = dir.join(file);
        std::fs::write(&out, data).map_err(|e| format!("{}: {e}", out.display()))?;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", out.display()))?;
        CString::new(out.into_os_string().into_encoded_bytes()).map_err(|e| e.to_string())
    };
    Ok(ArchivePrograms {
        true_program: write("bin/true", "true")?,
        shell: write("bin/sh", "sh")?,
        dir,
    })
}

/// The members by name (`./` and `/` prefixes dropped). A hard-linked
/// file's data comes with one of its names only (newc): the others get it
/// through the inode number.
fn members(bytes: &[u8]) -> Result<HashMap<String, Member>, String> {
    let mut by_name = HashMap::new();
    let mut names_of_ino: HashMap<u32, Vec<String>> = HashMap::new();
    let mut rest = bytes;
    loop {
        let mut reader = cpio::NewcReader::new(rest).map_err(|e| format!("bad archive: {e}"))?;
        let entry = reader.entry();
        if entry.is_trailer() {
            break;
        }
        let name = entry
            .name()
            .trim_start_matches("./")
            .trim_start_matches('/');
        let (name, mode, ino) = (name.to_owned(), entry.mode(), entry.ino());
        let mut data = Vec::new();
        reader
            .read_to_end(&mut data)
            .map_err(|e| format!("bad archive member {name}: {e}"))?;
        names_of_ino.entry(ino).or_default().push(name.clone());
        by_name.insert(name, Member { mode, data });
        rest = reader.finish().map_err(|e| format!("bad archive: {e}"))?;
    }
    for names in names_of_ino.values().filter(|names| names.len() > 1) {
        let data = names
            .iter()
            .filter_map(|n| by_name.get(n))
            .find(|m| m.mode & S_IFMT == S_IFREG && !m.data.is_empty())
            .map(|m| m.data.clone());
        if let Some(data) = data {
            for name in names {
                if let Some(member) = by_name.get_mut(name) {
                    member.data.clone_from(&data);
                }
            }
        }
    }
    Ok(by_name)
}

/// The contents of the regular file `name` names, symbolic links followed
/// (at most 8, as a sanity bound).
fn resolve<'a>(members: &'a HashMap<String, Member>, name: &str) -> Result<&'a [u8], String> {
    let mut path = PathBuf::from(name);
    for _ in 0..8 {
        let key = path.to_string_lossy().into_owned();
        let member = members
            .get(&key)
            .ok_or_else(|| format!("the archive has no /{key}"))?;
        match member.mode & S_IFMT {
            S_IFREG => return Ok(&member.data),
            S_IFLNK => {
                let target = String::from_utf8_lossy(&member.data).into_owned();
                path = match target.strip_prefix('/') {
                    Some(absolute) => PathBuf::from(absolute),
                    None => path.parent().unwrap_or(Path::new("")).join(target),
                };
            }
            _ => return Err(format!("/{key} is not a regular file")),
        }
    }
    Err(format!("/{name}: too many symbolic links"))
}

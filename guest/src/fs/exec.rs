//! Finding what `execve` runs (Linux `do_open_execat` and
//! `binfmt_script`): a regular file of the tree with execute permission
//! (the built-in programs are files under `/sbin/forkvm/`). A file
//! starting with `#!` runs its interpreter with the script's path as an
//! argument.
//!
//! Booted without an initramfs, a path the tree does not have also finds
//! the built-in program named by its last component (so `hello` and
//! `/bin/hello` run the embedded programs, as before there were files).
//! With an initramfs, lookups are strictly Linux's: programs such as
//! busybox's shell try names relative to the working directory and must
//! see ENOENT, not one of ours.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::errno::{EACCES, ELOOP, ENOENT, ENOMEM};
use crate::fs::dentry::Node;
use crate::fs::inode::{Inode, InodeKind};
use crate::fs::permission::MAY_EXEC;
use forkvm_core::fs::shebang::shebang;

/// A program's bytes: in the kernel image (built-in programs,
/// unchanged files made from them) or a regular file, whose pages the
/// loader maps (nothing is copied but what must be: `process::exec`).
pub enum ExecImage {
    Static(&'static [u8]),
    File(Arc<Inode>),
}

impl ExecImage {
    pub fn len(&self) -> u64 {
        match self {
            ExecImage::Static(bytes) => bytes.len() as u64,
            ExecImage::File(inode) => inode.data().map_or(0, |d| d.lock().size()),
        }
    }

    /// Copies bytes from `offset` into `buf`; returns how many.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        match self {
            ExecImage::Static(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                n
            }
            ExecImage::File(inode) => inode.data().map_or(0, |d| d.lock().read_at(offset, buf)),
        }
    }

    /// The first `max` bytes (fewer for a shorter file).
    pub fn head(&self, max: usize) -> Result<Vec<u8>, i32> {
        let len = (self.len() as usize).min(max);
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| ENOMEM)?;
        bytes.resize(len, 0);
        let n = self.read_at(0, &mut bytes);
        bytes.truncate(n);
        Ok(bytes)
    }

    /// The regular file, when it is a file of the tree.
    pub fn inode(&self) -> Option<&Arc<Inode>> {
        match self {
            ExecImage::Static(_) => None,
            ExecImage::File(inode) => Some(inode),
        }
    }
}

/// Whether a missing path falls back to the built-in program of its last
/// component (set at boot when there is no initramfs).
static BUILTIN_BY_NAME: AtomicBool = AtomicBool::new(false);

/// Turns the by-name fallback on or off.
pub fn set_builtin_by_name(on: bool) {
    BUILTIN_BY_NAME.store(on, Ordering::Relaxed);
}

/// Most `#!` lines followed for one exec (Linux's `BINPRM_MAX_RECURSION`).
const MAX_INTERPRETERS: usize = 4;

/// What `execve` loads: the image, the arguments it runs with (changed
/// for a script: interpreter, its optional argument, the script's
/// path, then `argv[1..]`) and the path of the file loaded (a
/// script's interpreter).
pub struct Exec {
    pub image: ExecImage,
    pub argv: Vec<Vec<u8>>,
    pub path: Vec<u8>,
}

/// The image `path` names (following `#!` lines).
pub fn open_exec(path: &[u8], argv: &[&[u8]]) -> Result<Exec, i32> {
    let mut argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
    let mut path = path.to_vec();
    for _ in 0..=MAX_INTERPRETERS {
        let image = open_one(&path)?;
        let head = image.head(forkvm_core::fs::shebang::SHEBANG_MAX)?;
        let Some(line) = shebang(&head) else {
            return Ok(Exec { image, argv, path });
        };
        let (interpreter, argument) = line?;
        let mut new_argv = Vec::with_capacity(argv.len() + 2);
        new_argv.push(interpreter.to_vec());
        if let Some(argument) = argument {
            new_argv.push(argument.to_vec());
        }
        new_argv.push(path.clone());
        new_argv.extend(argv.iter().skip(1).cloned());
        argv = new_argv;
        path = interpreter.to_vec();
    }
    Err(ELOOP)
}

/// What `path` names, checked as Linux's `do_open_execat` checks it
/// (found, a regular file, executable by the caller) without reading it.
enum ExecFile {
    Builtin(&'static [u8]),
    File(Arc<Inode>),
}

fn find_exec(path: &[u8]) -> Result<ExecFile, i32> {
    let access = crate::fs::current::current_access();
    let fs = crate::fs::current::current_fs();
    let found = fs.lock().walk(&access).lookup_node(path, true);
    let inode = match found {
        Ok(Node::Inode(inode)) => inode,
        Ok(Node::Dir(_)) => return Err(EACCES),
        Err(ENOENT) if BUILTIN_BY_NAME.load(Ordering::Relaxed) => {
            return crate::programs::find(path)
                .map(ExecFile::Builtin)
                .ok_or(ENOENT)
        }
        Err(e) => return Err(e),
    };
    if !matches!(inode.kind, InodeKind::Regular(_)) {
        return Err(EACCES);
    }
    access.permission_node(&Node::Inode(inode.clone()), MAY_EXEC)?;
    Ok(ExecFile::File(inode))
}

/// The absolute path of the file `path` names, symbolic links
/// resolved (Linux's `d_path` of `mm->exe_file`, `/proc/self/exe`);
/// None if it cannot be found again or lies outside the caller's root.
pub fn resolve_path(path: &[u8]) -> Option<Vec<u8>> {
    let access = crate::fs::current::current_access();
    let fs = crate::fs::current::current_fs();
    let fs = fs.lock();
    fs.walk(&access).canonical_path(path)
}

/// Linux opens the program before it reads `execve`'s arguments: a
/// missing or non-executable file is its errno even with a bad argv.
pub fn check_exec(path: &[u8]) -> Result<(), i32> {
    find_exec(path).map(|_| ())
}

/// A dynamically linked program's interpreter (its PT_INTERP path),
/// opened as the program itself was (Linux `open_exec`): ENOENT if
/// missing, EACCES without execute permission.
pub fn open_interpreter(path: &[u8]) -> Result<ExecImage, i32> {
    open_one(path)
}

fn open_one(path: &[u8]) -> Result<ExecImage, i32> {
    let inode = match find_exec(path)? {
        ExecFile::Builtin(image) => return Ok(ExecImage::Static(image)),
        ExecFile::File(inode) => inode,
    };
    let InodeKind::Regular(data) = &inode.kind else {
        return Err(EACCES);
    };
    if let Some(image) = data.lock().image() {
        return Ok(ExecImage::Static(image));
    }
    Ok(ExecImage::File(inode))
}

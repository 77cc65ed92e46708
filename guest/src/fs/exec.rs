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

/// The file an exec starts from, opened before the arguments are read
/// (Linux `alloc_bprm`: `do_open_execat` and the name it gives the
/// program).
pub struct ExecStart {
    pub image: ExecImage,
    /// Linux `bprm->filename`: the path as given, or `/dev/fd/N` and
    /// `/dev/fd/N/PATH` for `execveat` relative to a descriptor. It is
    /// AT_EXECFN, a script's argument to its interpreter, and the
    /// source of the new `comm`.
    pub filename: Vec<u8>,
    /// The opened file's absolute path (`/proc/PID/exe`) when the
    /// filename cannot be looked up again (relative to a descriptor);
    /// None: resolve the filename.
    pub exe_path: Option<Vec<u8>>,
    /// `comm` comes from the file's own name, not the filename (Linux
    /// `comm_from_dentry`, for `execveat` of a descriptor with an empty
    /// path).
    pub comm_from_file: bool,
    /// The filename names a close-on-exec descriptor, which is gone
    /// once the new program runs (Linux BINPRM_FLAGS_PATH_INACCESSIBLE):
    /// a script then fails with ENOENT, its interpreter could not open it.
    pub path_inaccessible: bool,
}

impl ExecStart {
    /// `execve(path)`: the file `path` names from the cwd, symbolic links
    /// followed.
    pub fn open(path: &[u8]) -> Result<ExecStart, i32> {
        ExecStart::open_path(path, true)
    }

    /// The file `path` names from the cwd (or the root); a symbolic link
    /// at its end is followed if `follow`, else ELOOP.
    pub fn open_path(path: &[u8], follow: bool) -> Result<ExecStart, i32> {
        let image = match find_exec(path, follow)? {
            ExecFile::Builtin(image) => ExecImage::Static(image),
            ExecFile::File(inode) => image_of(inode),
        };
        Ok(ExecStart {
            image,
            filename: path.to_vec(),
            exe_path: None,
            comm_from_file: false,
            path_inaccessible: false,
        })
    }
}

/// What `execve` loads: the image, the arguments it runs with (changed
/// for a script: interpreter, its optional argument, the script's
/// path, then `argv[1..]`), the path of the file loaded (a script's
/// interpreter) and whether that is the start's file.
pub struct Exec {
    pub image: ExecImage,
    pub argv: Vec<Vec<u8>>,
    pub path: Vec<u8>,
    pub interpreted: bool,
}

/// The image `start` leads to (following `#!` lines).
pub fn open_exec(start: ExecStart, argv: &[&[u8]]) -> Result<Exec, i32> {
    let mut argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
    let mut path = start.filename;
    let mut image = start.image;
    for hop in 0..=MAX_INTERPRETERS {
        if hop > 0 {
            image = open_one(&path)?;
        }
        let head = image.head(forkvm_core::fs::shebang::SHEBANG_MAX)?;
        let Some(line) = shebang(&head) else {
            return Ok(Exec {
                image,
                argv,
                path,
                interpreted: hop > 0,
            });
        };
        let (interpreter, argument) = line?;
        if start.path_inaccessible {
            return Err(ENOENT);
        }
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

fn find_exec(path: &[u8], follow: bool) -> Result<ExecFile, i32> {
    let access = crate::fs::current::current_access();
    let fs = crate::fs::current::current_fs();
    let found = fs.lock().walk(&access).lookup_node(path, follow);
    match found {
        Err(ENOENT) if BUILTIN_BY_NAME.load(Ordering::Relaxed) => crate::programs::find(path)
            .map(ExecFile::Builtin)
            .ok_or(ENOENT),
        found => exec_node(&found?, &access).map(ExecFile::File),
    }
}

/// Linux `may_open` for an exec of `node`: a directory or any file but a
/// regular one is EACCES, a symbolic link (not followed) ELOOP, and the
/// caller needs execute permission.
fn exec_node(node: &Node, access: &crate::fs::permission::Access) -> Result<Arc<Inode>, i32> {
    let inode = match node {
        Node::Dir(_) => return Err(EACCES),
        Node::Inode(inode) => inode,
    };
    match inode.kind {
        InodeKind::Regular(_) => {}
        InodeKind::Symlink(_) => return Err(ELOOP),
        _ => return Err(EACCES),
    }
    access.permission_node(node, MAY_EXEC)?;
    Ok(inode.clone())
}

/// The image of `node`, a file `execveat` found relative to a
/// descriptor (or the descriptor's own file), checked as `execve`
/// checks a path's file.
pub fn open_node(node: &Node) -> Result<ExecImage, i32> {
    let inode = exec_node(node, &crate::fs::current::current_access())?;
    Ok(image_of(inode))
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

/// A dynamically linked program's interpreter (its PT_INTERP path),
/// opened as the program itself was (Linux `open_exec`): ENOENT if
/// missing, EACCES without execute permission.
pub fn open_interpreter(path: &[u8]) -> Result<ExecImage, i32> {
    open_one(path)
}

fn open_one(path: &[u8]) -> Result<ExecImage, i32> {
    ExecStart::open(path).map(|opened| opened.image)
}

/// A regular file's image: a built-in program's bytes if it still holds
/// them unchanged.
fn image_of(inode: Arc<Inode>) -> ExecImage {
    if let InodeKind::Regular(data) = &inode.kind {
        if let Some(image) = data.lock().image() {
            return ExecImage::Static(image);
        }
    }
    ExecImage::File(inode)
}

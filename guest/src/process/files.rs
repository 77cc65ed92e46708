//! The file-descriptor table (Linux `files_struct`), shared by tasks
//! created with `CLONE_FILES` and copied otherwise (`copy_files`: the copy
//! refers to the same open files, as Linux's `dup_fd` does).

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::errno::{EBADF, EMFILE};
use crate::fs::{File, FileKind};

/// Most descriptors per table (Linux's default RLIMIT_NOFILE soft limit).
pub const NR_OPEN: usize = 1024;

/// Descriptor -> open file description.
#[derive(Clone, Default)]
pub struct FdTable {
    fds: Vec<Option<Arc<File>>>,
}

impl FdTable {
    /// A table with the console on descriptors 0, 1 and 2.
    pub fn with_console() -> FdTable {
        let console = File::new(FileKind::Console);
        FdTable {
            fds: alloc::vec![Some(console.clone()), Some(console.clone()), Some(console)],
        }
    }

    /// The file on `fd`.
    pub fn get(&self, fd: u64) -> Result<Arc<File>, i32> {
        self.fds
            .get(fd as usize)
            .and_then(|f| f.clone())
            .ok_or(EBADF)
    }

    /// Installs `file` on the lowest free descriptor.
    pub fn install(&mut self, file: Arc<File>) -> Result<u64, i32> {
        let fd = match self.fds.iter().position(Option::is_none) {
            Some(fd) => fd,
            None if self.fds.len() < NR_OPEN => {
                self.fds.push(None);
                self.fds.len() - 1
            }
            None => return Err(EMFILE),
        };
        self.fds[fd] = Some(file);
        Ok(fd as u64)
    }

    /// Installs `file` on exactly `fd`, closing what was there (dup2).
    pub fn install_at(&mut self, fd: u64, file: Arc<File>) -> Result<Option<Arc<File>>, i32> {
        let fd = fd as usize;
        if fd >= NR_OPEN {
            return Err(EBADF);
        }
        if self.fds.len() <= fd {
            self.fds.resize(fd + 1, None);
        }
        Ok(self.fds[fd].replace(file))
    }

    /// Removes `fd`; returns the file so the caller drops it outside the lock.
    pub fn close(&mut self, fd: u64) -> Result<Arc<File>, i32> {
        self.fds
            .get_mut(fd as usize)
            .and_then(Option::take)
            .ok_or(EBADF)
    }

    /// Open descriptors.
    pub fn count(&self) -> usize {
        self.fds.iter().filter(|f| f.is_some()).count()
    }
}

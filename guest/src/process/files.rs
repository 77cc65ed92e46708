//! The file-descriptor table (Linux `files_struct`), shared by tasks
//! created with `CLONE_FILES` and copied otherwise (`copy_files`: the copy
//! refers to the same open files, as Linux's `dup_fd` does).

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::errno::{EBADF, EMFILE};
use crate::fs::{File, FileKind};

/// Most descriptors per table (Linux's default RLIMIT_NOFILE soft limit).
pub const NR_OPEN: usize = 1024;

/// Descriptor -> open file description, and the descriptors closed by
/// `execve` (FD_CLOEXEC, a property of the descriptor, not the file).
#[derive(Clone, Default)]
pub struct FdTable {
    fds: Vec<Option<Arc<File>>>,
    close_on_exec: alloc::collections::BTreeSet<usize>,
}

impl FdTable {
    /// A table with the console on descriptors 0, 1 and 2.
    pub fn with_console() -> FdTable {
        let console = File::new(FileKind::Console);
        FdTable {
            fds: alloc::vec![Some(console.clone()), Some(console.clone()), Some(console)],
            close_on_exec: Default::default(),
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
        self.close_on_exec.remove(&fd);
        Ok(fd as u64)
    }

    /// [`install`](Self::install), with FD_CLOEXEC set if `cloexec`.
    pub fn install_flagged(&mut self, file: Arc<File>, cloexec: bool) -> Result<u64, i32> {
        let fd = self.install(file)?;
        if cloexec {
            self.close_on_exec.insert(fd as usize);
        }
        Ok(fd)
    }

    /// Installs `file` on the lowest free descriptor at or above `min`
    /// (`fcntl(F_DUPFD)`): EINVAL past the table's limit, EMFILE if full.
    pub fn install_from(&mut self, file: Arc<File>, min: u64, cloexec: bool) -> Result<u64, i32> {
        let min = usize::try_from(min)
            .ok()
            .filter(|&m| m < NR_OPEN)
            .ok_or(crate::errno::EINVAL)?;
        let fd = (min..NR_OPEN)
            .find(|&fd| self.fds.get(fd).is_none_or(Option::is_none))
            .ok_or(EMFILE)?;
        if self.fds.len() <= fd {
            self.fds.resize(fd + 1, None);
        }
        self.fds[fd] = Some(file);
        self.set_close_on_exec(fd as u64, cloexec)?;
        Ok(fd as u64)
    }

    /// Whether `fd` has FD_CLOEXEC (EBADF if not open).
    pub fn close_on_exec(&self, fd: u64) -> Result<bool, i32> {
        self.get(fd)?;
        Ok(self.close_on_exec.contains(&(fd as usize)))
    }

    /// Sets or clears FD_CLOEXEC on `fd` (EBADF if not open).
    pub fn set_close_on_exec(&mut self, fd: u64, on: bool) -> Result<(), i32> {
        self.get(fd)?;
        if on {
            self.close_on_exec.insert(fd as usize);
        } else {
            self.close_on_exec.remove(&(fd as usize));
        }
        Ok(())
    }

    /// Removes every FD_CLOEXEC descriptor (Linux `do_close_on_exec`);
    /// returns the files for the caller to drop outside the lock.
    pub fn take_close_on_exec(&mut self) -> Vec<Arc<File>> {
        let fds = core::mem::take(&mut self.close_on_exec);
        fds.into_iter()
            .filter_map(|fd| self.fds.get_mut(fd).and_then(Option::take))
            .collect()
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
        self.close_on_exec.remove(&fd);
        Ok(self.fds[fd].replace(file))
    }

    /// Removes `fd`; returns the file so the caller drops it outside the lock.
    pub fn close(&mut self, fd: u64) -> Result<Arc<File>, i32> {
        self.close_on_exec.remove(&(fd as usize));
        self.fds
            .get_mut(fd as usize)
            .and_then(Option::take)
            .ok_or(EBADF)
    }

    /// The open descriptors, in order, with their files.
    pub fn open_fds(&self) -> impl Iterator<Item = (u64, &Arc<File>)> + '_ {
        self.fds
            .iter()
            .enumerate()
            .filter_map(|(fd, file)| file.as_ref().map(|file| (fd as u64, file)))
    }

    /// The size of the table as Linux would have grown it (`fdt->max_fds`,
    /// which `select` cuts its `n` to): 64 slots, then the power of two
    /// above the highest descriptor used.
    pub fn max_fds(&self) -> usize {
        self.fds.len().max(64).next_power_of_two()
    }

    /// Open descriptors.
    pub fn count(&self) -> usize {
        self.fds.iter().filter(|f| f.is_some()).count()
    }
}

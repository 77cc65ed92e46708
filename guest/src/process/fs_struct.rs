//! Per-process file-system context (Linux `fs_struct`): here only the
//! umask, as there is no file system; shared with `CLONE_FS`.

use alloc::sync::Arc;

use spin::Mutex;

/// The file-system context.
#[derive(Clone, Copy, Debug)]
pub struct FsStruct {
    pub umask: u32,
}

impl FsStruct {
    /// Init's context (Linux's default umask 022).
    pub fn new_shared() -> Arc<Mutex<FsStruct>> {
        Arc::new(Mutex::new(FsStruct { umask: 0o022 }))
    }

    /// Whether the root is not the file system's (Linux
    /// `current_chrooted`). There is no chroot yet, so never.
    pub fn is_chrooted(&self) -> bool {
        false
    }
}

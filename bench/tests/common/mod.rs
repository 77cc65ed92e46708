//! What the `forkbench` command-line tests share: running the binary, a
//! scratch directory that cleans up after itself, and the success check
//! that shows the command's stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `forkbench ARGS...` and collects its output.
pub fn forkbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(args)
        .output()
        .expect("forkbench runs")
}

/// Asserts that `out` is a successful run, showing its stderr if not.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch directory for one test, created empty (per test name and
/// process) and removed when dropped, also when the test fails.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("forkbench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The path of `file` in the directory, as the `&str` a command line
    /// takes.
    pub fn arg(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_owned()
    }

    /// The contents of `file` in the directory ("" if it was not written).
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.0.join(file)).unwrap_or_default()
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

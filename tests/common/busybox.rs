//! Debian's busybox-static for the tests that run real programs: fetched
//! once into `target/` without root (`apt-get download` + `dpkg-deb -x`),
//! packed into a newc archive with a link per applet. Shared by the VM
//! tests (`tests/common`) and forkbench's (`bench/tests`, by path).
#![allow(dead_code)] // each test file uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A newc archive built in memory.
pub struct Archive {
    out: Vec<u8>,
    ino: u32,
}

impl Archive {
    pub fn new() -> Archive {
        Archive {
            out: Vec::new(),
            ino: 1,
        }
    }

    pub fn entry(&mut self, name: &str, mode: u32, nlink: u32, ino: u32, data: &[u8]) -> &mut Self {
        let mut writer = cpio::NewcBuilder::new(name)
            .ino(ino)
            .mode(mode)
            .nlink(nlink)
            .write(&mut self.out, data.len() as u32);
        writer.write_all(data).unwrap();
        writer.finish().unwrap();
        self
    }

    pub fn next_ino(&mut self) -> u32 {
        self.ino += 1;
        self.ino
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let ino = self.next_ino();
        self.entry(name, 0o040_755, 2, ino, &[])
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        let ino = self.next_ino();
        self.entry(name, 0o100_000 | mode, 1, ino, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let ino = self.next_ino();
        self.entry(name, 0o120_777, 1, ino, target.as_bytes())
    }

    /// The archive with its trailer.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out = cpio::newc::trailer(out).unwrap();
        out
    }
}

/// Debian's busybox-static, fetched once into `target/` (`apt-get
/// download` + `dpkg-deb -x`, no root needed). Tests run in parallel: one
/// fetches, the others wait for it.
pub fn busybox() -> PathBuf {
    static FETCHED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FETCHED.get_or_init(fetch_busybox).clone()
}

fn fetch_busybox() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-static");
    let binary = dir.join("root/bin/busybox");
    if binary.exists() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let fetched = Command::new("apt-get")
        .args(["download", "busybox-static"])
        .current_dir(&dir)
        .status()
        .expect("apt-get runs (the busybox tests need Debian's apt-get and dpkg-deb)");
    assert!(fetched.success(), "apt-get download busybox-static failed");
    let deb = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb was downloaded");
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root"))
        .status()
        .expect("dpkg-deb runs");
    assert!(
        unpacked.success() && binary.exists(),
        "dpkg-deb -x {} failed",
        deb.display()
    );
    binary
}

/// The applets the busybox binary has.
pub fn applets(busybox: &Path) -> Vec<String> {
    let out = Command::new(busybox).arg("--list").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `/bin/busybox`, `/bin/APPLET -> busybox` for each applet, `/tmp`.
pub fn busybox_archive(busybox: &Path) -> Vec<u8> {
    let mut a = Archive::new();
    a.dir("bin").dir("tmp");
    a.file("bin/busybox", 0o755, &std::fs::read(busybox).unwrap());
    for applet in applets(busybox) {
        if applet != "busybox" {
            a.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    a.finish()
}

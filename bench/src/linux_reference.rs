//! The Linux reference guest of `forkbench compare --reference linux-vm`:
//! Linux booted by the same VMM (`vmm::linux_boot`), with the same memory
//! and vCPUs, serving the same harness protocol with the same `harnessd`
//! (its `/init`, see `forkvm_user::linux_init`), so every operation runs
//! identically on forkvm's kernel and on Linux's and the fair ratio is
//! forkvm guest / Linux guest.
//!
//! [`LinuxReference::locate`] finds the kernel (by default the Debian
//! `linux-image-amd64` that `tests/hvm_nested/provision.sh` caches under
//! `target/tmp/hvm-nested/cache/linux/`), the modules its `/init` must load
//! (that cache's `guest/modules/`, with their load `order`) and its
//! configuration; [`LinuxReference::archive`] builds the initramfs: `/init`
//! (`harnessd`), `/exit_with` (what `fork_exec` executes, found in the
//! working directory) and `/modules`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::report::ReferenceInfo;

/// Where `provision.sh` caches the kernel, under the target directory.
const CACHE: &str = "tmp/hvm-nested/cache/linux";
/// The configuration options the report records (the rest is in the file).
const RECORDED_OPTIONS: [&str; 9] = [
    "CONFIG_HZ",
    "CONFIG_PREEMPT_DYNAMIC",
    "CONFIG_PREEMPT_VOLUNTARY",
    "CONFIG_PREEMPT",
    "CONFIG_PREEMPT_NONE",
    "CONFIG_TRANSPARENT_HUGEPAGE",
    "CONFIG_PAGE_TABLE_ISOLATION",
    "CONFIG_VIRTIO_MMIO",
    "CONFIG_VIRTIO_CONSOLE",
];

/// A Linux kernel to compare with, and what its guest needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxReference {
    /// The bzImage.
    pub kernel: PathBuf,
    /// A directory with `order` (module names in load order) and
    /// `NAME.ko` files, if the kernel needs modules for the virtio console.
    pub modules: Option<PathBuf>,
    /// The kernel's `.config`, if known.
    pub config: Option<PathBuf>,
}

impl LinuxReference {
    /// The reference for `--linux-kernel` (`None`: the cached Debian
    /// kernel). Modules and config are taken from the cache's layout next
    /// to the kernel (`guest/modules`, `guest/config`) when they are there.
    pub fn locate(kernel: Option<&Path>) -> Result<LinuxReference, String> {
        let kernel = match kernel {
            Some(path) => path.to_path_buf(),
            None => default_kernel().ok_or_else(|| {
                format!(
                    "no cached Linux kernel ({CACHE}/vmlinuz under the target directory): run \
                     `bash tests/hvm_nested/provision.sh target/tmp/hvm-nested/cache` or give \
                     --linux-kernel PATH"
                )
            })?,
        };
        if !vmm::linux_boot::path_is_bzimage(&kernel) {
            return Err(format!(
                "{}: not a Linux bzImage (no setup header)",
                kernel.display()
            ));
        }
        let beside = kernel.parent().unwrap_or(Path::new(".")).join("guest");
        let modules = Some(beside.join("modules")).filter(|d| d.join("order").is_file());
        let config = Some(beside.join("config")).filter(|c| c.is_file());
        Ok(LinuxReference {
            kernel,
            modules,
            config,
        })
    }

    /// The newc archive of the Linux guest: `harnessd` as `/init`,
    /// `exit_with` and the modules.
    pub fn archive(&self) -> Result<Vec<u8>, String> {
        let programs = vmm::USER_PROGRAMS_DIR.ok_or(
            "this forkbench was built with a prebuilt guest kernel: it has no user programs \
             (harnessd) to put in the Linux guest",
        )?;
        let read =
            |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let mut archive = Archive::default();
        for dir in ["dev", "proc", "modules"] {
            archive.entry(dir, 0o040_755, &[])?;
        }
        // The kernel opens it as init's standard input, output and error
        // (its serial console): harnessd's messages reach the serial log.
        archive.char_device("dev/console", 0o600, 5, 1)?;
        archive.entry(
            "init",
            0o100_755,
            &read(&Path::new(programs).join("harnessd"))?,
        )?;
        archive.entry(
            "exit_with",
            0o100_755,
            &read(&Path::new(programs).join("exit_with"))?,
        )?;
        if let Some(dir) = &self.modules {
            let order = read(&dir.join("order"))?;
            archive.entry("modules/order", 0o100_644, &order)?;
            for name in String::from_utf8_lossy(&order).split_whitespace() {
                let file = format!("{name}.ko");
                archive.entry(
                    &format!("modules/{file}"),
                    0o100_644,
                    &read(&dir.join(&file))?,
                )?;
            }
        }
        archive.finish()
    }

    /// What the report records about this reference; `kernel_version` is
    /// the guest's own `uname` (from its Hello).
    pub fn info(&self, kernel_version: &str, command_line: &str) -> ReferenceInfo {
        let mut config_options = BTreeMap::new();
        if let Some(text) = self
            .config
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            for line in text.lines() {
                if let Some((key, value)) = line.split_once('=') {
                    if RECORDED_OPTIONS.contains(&key) {
                        config_options.insert(key.to_string(), value.to_string());
                    }
                }
            }
        }
        let modules = self
            .modules
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("order")).ok())
            .map(|order| order.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        ReferenceInfo {
            kind: "linux-vm".to_string(),
            kernel_path: self.kernel.display().to_string(),
            kernel_version: kernel_version.to_string(),
            config_path: self.config.as_ref().map(|p| p.display().to_string()),
            config_options,
            modules,
            command_line: command_line.to_string(),
        }
    }
}

/// The cached kernel under the target directory of this executable.
fn default_kernel() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .map(|dir| dir.join(CACHE).join("vmlinuz"))
        .find(|path| path.is_file())
}

/// A newc (SVR4 "070701") cpio archive in memory.
#[derive(Default)]
struct Archive {
    out: Vec<u8>,
    inode: u32,
}

impl Archive {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        self.inode += 1;
        let size = u32::try_from(data.len()).map_err(|_| format!("{name}: over 4 GiB"))?;
        let mut writer = cpio::NewcBuilder::new(name)
            .ino(self.inode)
            .mode(mode)
            .nlink(1)
            .write(&mut self.out, size);
        writer.write_all(data).map_err(|e| format!("{name}: {e}"))?;
        writer.finish().map_err(|e| format!("{name}: {e}"))?;
        Ok(())
    }

    fn char_device(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> Result<(), String> {
        self.inode += 1;
        cpio::NewcBuilder::new(name)
            .ino(self.inode)
            .mode(0o020_000 | mode)
            .nlink(1)
            .rdev_major(major)
            .rdev_minor(minor)
            .write(&mut self.out, 0)
            .finish()
            .map(drop)
            .map_err(|e| format!("{name}: {e}"))
    }

    fn finish(self) -> Result<Vec<u8>, String> {
        cpio::newc::trailer(self.out).map_err(|e| format!("cpio trailer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("linuxref-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("guest/modules")).unwrap();
        dir
    }

    fn fake_bzimage(path: &Path) {
        let mut bytes = vec![0u8; 0x400];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn the_cache_layout_beside_the_kernel_gives_modules_and_config() {
        let dir = scratch("layout");
        let kernel = dir.join("vmlinuz");
        fake_bzimage(&kernel);
        let bare = LinuxReference::locate(Some(&kernel)).unwrap();
        assert_eq!((bare.modules, bare.config), (None, None));
        std::fs::write(dir.join("guest/modules/order"), "virtio\nvirtio_mmio\n").unwrap();
        std::fs::write(
            dir.join("guest/config"),
            "CONFIG_HZ=250\nCONFIG_VIRTIO_MMIO=m\nCONFIG_X=y\n# CONFIG_PREEMPT is not set\n",
        )
        .unwrap();
        let full = LinuxReference::locate(Some(&kernel)).unwrap();
        assert_eq!(full.modules, Some(dir.join("guest/modules")));
        let info = full.info("Linux 6.1.0", "console=ttyS0");
        assert_eq!(info.kind, "linux-vm");
        assert_eq!(info.modules, vec!["virtio", "virtio_mmio"]);
        assert_eq!(
            info.config_options.into_iter().collect::<Vec<_>>(),
            vec![
                ("CONFIG_HZ".to_string(), "250".to_string()),
                ("CONFIG_VIRTIO_MMIO".to_string(), "m".to_string())
            ]
        );
        std::fs::write(&kernel, b"\x7fELF").unwrap();
        assert!(LinuxReference::locate(Some(&kernel))
            .unwrap_err()
            .contains("not a Linux bzImage"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_archive_has_init_exit_with_and_the_modules_in_order() {
        if vmm::USER_PROGRAMS_DIR.is_none() {
            return;
        }
        let dir = scratch("archive");
        let kernel = dir.join("vmlinuz");
        fake_bzimage(&kernel);
        std::fs::write(dir.join("guest/modules/order"), "a\nb\n").unwrap();
        std::fs::write(dir.join("guest/modules/a.ko"), b"AAA").unwrap();
        std::fs::write(dir.join("guest/modules/b.ko"), b"BB").unwrap();
        let archive = LinuxReference::locate(Some(&kernel))
            .unwrap()
            .archive()
            .unwrap();
        let mut names = Vec::new();
        let mut rest = &archive[..];
        loop {
            let reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            names.push((reader.entry().name().to_string(), reader.entry().mode()));
            rest = reader.finish().unwrap();
        }
        let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "proc",
                "modules",
                "dev/console",
                "init",
                "exit_with",
                "modules/order",
                "modules/a.ko",
                "modules/b.ko"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

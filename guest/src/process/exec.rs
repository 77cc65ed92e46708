//! `execve`: replacing a task's program with an ELF executable, a file
//! or one of the embedded programs (`fs::exec` finds it; Linux `do_execve`
//! / `load_elf_binary`).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use forkvm_abi::PAGE_SIZE;

use super::elf;
use super::task::Task;
use super::user_stack::{
    self, AT_BASE, AT_CLKTCK, AT_EGID, AT_ENTRY, AT_EUID, AT_EXECFN, AT_FLAGS, AT_GID, AT_HWCAP,
    AT_HWCAP2, AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM, AT_SECURE, AT_UID,
    HWCAP2_FSGSBASE,
};
use crate::arch::entry::{FpuState, TrapFrame, UserContext};
use crate::arch::gdt::{USER_CS, USER_DS};
use crate::arch::{cpu, switch};
use crate::errno::{EIO, ELIBBAD, ENOMEM};
use crate::fs::exec::{ExecImage, ExecStart};
use crate::mm::address_space::{AddressSpace, TaskMm, STACK_SIZE, STACK_TOP};
use crate::mm::vma::{Prot, VmaFlags, TASK_SIZE};

/// A program loaded into a fresh address space, ready to start.
pub struct LoadedProgram {
    pub mm: Arc<AddressSpace>,
    pub entry: u64,
    pub stack_pointer: u64,
    /// The task's new `comm` (Linux `begin_new_exec`): the last
    /// component of the filename, or the loaded file's own name.
    pub comm: Vec<u8>,
}

fn page_down(address: u64) -> u64 {
    address & !(PAGE_SIZE - 1)
}

fn page_up(address: u64) -> u64 {
    (address + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// Where a position-independent program is loaded: Linux's
/// `ELF_ET_DYN_BASE` is two thirds of the user address window; the
/// default layout here lives in the first 512 GiB (one PML4 entry, see
/// "Address spaces" in docs/ARCHITECTURE.md), so two thirds of that.
pub const ELF_ET_DYN_BASE: u64 = ((512 << 30) / 3 * 2) & !(PAGE_SIZE - 1);

/// AT_HWCAP: CPUID.1:EDX (Linux's `ELF_HWCAP`), read once: `cpuid` is a
/// VM exit, which every exec would pay.
fn hwcap() -> u64 {
    static HWCAP: spin::Once<u64> = spin::Once::new();
    *HWCAP.call_once(|| u64::from(cpu::cpuid(1, 0).edx))
}

/// Linux's `USER_HZ`, the unit of `times` and `/proc` ticks (AT_CLKTCK).
const USER_HZ: u64 = 100;

/// Loads the program `opened` starts from into a new address space, with
/// its arguments and environment on a new stack. A dynamically linked
/// program also gets its interpreter (PT_INTERP), which it starts in.
pub fn load(opened: ExecStart, argv: &[&[u8]], envp: &[&[u8]]) -> Result<LoadedProgram, i32> {
    let filename = opened.filename.clone();
    let path: &[u8] = &filename;
    let opened_exe_path = opened.exe_path.clone();
    let comm_from_file = opened.comm_from_file;
    // A file of the tree or a built-in program; `#!` scripts change argv.
    let crate::fs::exec::Exec {
        image,
        argv,
        path: loaded_path,
        interpreted,
    } = crate::fs::exec::open_exec(opened, argv)?;
    let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let exe = elf::parse(&image.head(elf::HEADER_MAX)?, image.len(), TASK_SIZE)?;
    // Like Linux, the interpreter is opened and checked before anything
    // of the old program is given up: a missing one is ENOENT.
    let interpreter = match &exe.interpreter {
        Some(interp_path) => {
            let interp_image = crate::fs::exec::open_interpreter(interp_path)?;
            // Linux reads the interpreter's ELF header first: a short
            // read is EIO, anything but an x86-64 ELF file ELIBBAD.
            let head = interp_image.head(elf::HEADER_MAX)?;
            if head.len() < elf::EHDR_SIZE {
                return Err(EIO);
            }
            let interp = elf::parse(&head, interp_image.len(), TASK_SIZE).map_err(|_| ELIBBAD)?;
            Some((interp_image, interp))
        }
        None => None,
    };
    let mm = AddressSpace::new().map_err(|_| ENOMEM)?;

    let bias = if exe.position_independent {
        ELF_ET_DYN_BASE - exe.span().0
    } else {
        0
    };
    let image_end = map_image(&mm, &image, &exe, bias)?;
    {
        let mut inner = mm.inner.lock();
        inner.start_brk = image_end;
        inner.brk = image_end;
    }
    mm.map_lazy(
        STACK_TOP - STACK_SIZE,
        STACK_TOP,
        Prot::READ | Prot::WRITE,
        VmaFlags::ANONYMOUS | VmaFlags::GROWSDOWN,
    )?;
    // The interpreter goes where mmap would put it (Linux maps it with
    // `elf_map`, top-down below the stack).
    let (start, interp_base) = match &interpreter {
        Some((interp_image, interp)) => {
            let (low, high) = interp.span();
            let base = if interp.position_independent {
                mm.get_unmapped_area(high - low, 0).ok_or(ENOMEM)?
            } else {
                low
            };
            map_image(&mm, interp_image, interp, base - low)?;
            (interp.entry + base - low, base)
        }
        None => (exe.entry + bias, 0),
    };

    let cred = crate::sched::current().inner.lock().cred.clone();
    let mut auxv: Vec<(u64, u64)> = Vec::new();
    auxv.push((AT_HWCAP, hwcap()));
    auxv.push((AT_PAGESZ, PAGE_SIZE));
    auxv.push((AT_CLKTCK, USER_HZ));
    if let Some(phdr) = exe.phdr_vaddr {
        auxv.push((AT_PHDR, phdr + bias));
    }
    auxv.push((AT_PHENT, 56));
    auxv.push((AT_PHNUM, u64::from(exe.phnum)));
    auxv.push((AT_BASE, interp_base));
    auxv.push((AT_FLAGS, 0));
    auxv.push((AT_ENTRY, exe.entry + bias));
    auxv.push((AT_UID, u64::from(cred.uid_seen(cred.uid))));
    auxv.push((AT_EUID, u64::from(cred.uid_seen(cred.euid))));
    auxv.push((AT_GID, u64::from(cred.gid_seen(cred.gid))));
    auxv.push((AT_EGID, u64::from(cred.gid_seen(cred.egid))));
    // No set-user-id programs: the exec never raises privileges.
    auxv.push((AT_SECURE, 0));
    // Like Linux: FSGSBASE is offered to user code once the kernel enabled it.
    let hwcap2 = if cpu::has_fsgsbase() {
        HWCAP2_FSGSBASE
    } else {
        0
    };
    auxv.push((AT_HWCAP2, hwcap2));
    let random = cpu::rdtsc().to_le_bytes();
    let mut random16 = [0u8; 16];
    random16[..8].copy_from_slice(&random);
    random16[8..].copy_from_slice(&(!cpu::rdtsc()).to_le_bytes());
    let aux_strings: [(u64, &[u8]); 2] = [(AT_EXECFN, path), (AT_PLATFORM, b"x86_64")];
    let stack = user_stack::build(STACK_TOP, &argv, envp, &auxv, &aux_strings, random16)?;
    mm.copy_to_user(STACK_TOP - stack.bytes.len() as u64, &stack.bytes)?;
    // A built-in program found by name alone (no initramfs) is the file
    // of that name in /sbin/forkvm/.
    let exe_path = opened_exe_path
        .filter(|_| !interpreted)
        .or_else(|| crate::fs::exec::resolve_path(&loaded_path))
        .or_else(|| {
            let name = loaded_path.rsplit(|&b| b == b'/').next()?;
            crate::programs::find(name)?;
            Some([&b"/sbin/forkvm/"[..], name].concat())
        })
        .map(Arc::<[u8]>::from);
    let name_of = |path: &[u8]| path.rsplit(|&b| b == b'/').next().unwrap_or(path).to_vec();
    let comm = match &exe_path {
        Some(file) if comm_from_file => name_of(file),
        _ => name_of(path),
    };
    {
        let mut inner = mm.inner.lock();
        (inner.arg_start, inner.arg_end) = stack.args;
        inner.exe_path = exe_path;
    }

    Ok(LoadedProgram {
        mm,
        entry: start,
        stack_pointer: stack.sp,
        comm,
    })
}

/// How one page of a program's image gets its contents.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PageFill {
    /// The file's page with this index, mapped copy-on-write (a page
    /// wholly of one read-only segment's file bytes, as Linux's `elf_map`
    /// maps it).
    FilePage(u64),
    /// A private page the loader copies file bytes into: a page of a
    /// writable segment (the program writes most of its data pages at
    /// once, and a copy-on-write fault costs two VM exits on the PVM host,
    /// far more than a 4 KiB copy: mapping them from the file made a
    /// busybox fork+exec 11 -> 15 ms), one several segments share, the one
    /// where a segment's bss starts (its tail is zeroed, Linux `padzero`),
    /// or any page of a built-in program.
    Copied,
    /// Only bss: a zeroed page.
    Zero,
}

/// Maps the segments of `exe` at their addresses plus `bias`: the file's
/// page-cache pages where possible, copies where not (see [`PageFill`]).
/// Returns the end of the highest page.
fn map_image(
    mm: &AddressSpace,
    image: &ExecImage,
    exe: &elf::Executable,
    bias: u64,
) -> Result<u64, i32> {
    let file = image.inode();
    // Each page: the union of the rights of the segments on it, how it
    // is filled, and how many segments touch it.
    let mut pages: BTreeMap<u64, (Prot, PageFill, u32)> = BTreeMap::new();
    for segment in &exe.segments {
        let mut prot = Prot::NONE;
        if segment.read {
            prot = prot | Prot::READ;
        }
        if segment.write {
            prot = prot | Prot::WRITE;
        }
        if segment.execute {
            prot = prot | Prot::EXEC;
        }
        let start = segment.vaddr + bias;
        let file_end = start + segment.file_size;
        let first_index = page_down(segment.file_offset) / PAGE_SIZE;
        let mut page = page_down(start);
        while page < page_up(start + segment.mem_size) {
            let whole = page + PAGE_SIZE <= file_end
                || (segment.mem_size == segment.file_size && page < file_end);
            let fill = if file.is_some() && whole && !segment.write {
                PageFill::FilePage(first_index + (page - page_down(start)) / PAGE_SIZE)
            } else if page < file_end {
                PageFill::Copied
            } else {
                PageFill::Zero
            };
            let entry = pages.entry(page).or_insert((Prot::NONE, fill, 0));
            entry.0 = entry.0 | prot;
            entry.2 += 1;
            if entry.2 > 1 && (entry.1, fill) != (PageFill::Zero, PageFill::Zero) {
                entry.1 = PageFill::Copied;
            }
            page += PAGE_SIZE;
        }
    }
    // Map runs of alike pages (same rights and fill, consecutive file
    // pages) with one call each.
    let mut image_end = 0;
    let mut run: Vec<(u64, Prot, PageFill)> = Vec::new();
    let flush = |run: &mut Vec<(u64, Prot, PageFill)>| -> Result<(), i32> {
        let Some(&(start, prot, fill)) = run.first() else {
            return Ok(());
        };
        let end = start + run.len() as u64 * PAGE_SIZE;
        match (fill, file) {
            // Mapped now rather than at first touch: a program runs through
            // most of its text at once, and on the PVM host each fault costs
            // two VM exits (fault-around still leaves one per 16 pages).
            (PageFill::FilePage(index), Some(inode)) => crate::mm::file_map::map_file(
                mm,
                start..end,
                prot,
                false,
                inode,
                index * PAGE_SIZE,
                true,
            )?,
            // Zero and copied pages alike are filled now: the program
            // touches its bss at once, and a demand-zero fault costs two VM
            // exits on the PVM host.
            _ => mm.map_populated(start, end, prot, VmaFlags::PRIVATE)?,
        }
        run.clear();
        Ok(())
    };
    for (&page, &(prot, fill, _)) in &pages {
        image_end = page + PAGE_SIZE;
        let continues = run.last().is_some_and(|&(last, last_prot, last_fill)| {
            last + PAGE_SIZE == page
                && last_prot == prot
                && match (last_fill, fill) {
                    (PageFill::FilePage(a), PageFill::FilePage(b)) => a + 1 == b,
                    (a, b) => a == b,
                }
        });
        if !continues {
            flush(&mut run)?;
        }
        run.push((page, prot, fill));
    }
    flush(&mut run)?;
    // The file bytes of the copied pages.
    let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
    for segment in &exe.segments {
        let start = segment.vaddr + bias;
        let file_end = start + segment.file_size;
        let mut page = page_down(start);
        while page < file_end {
            if pages.get(&page).is_some_and(|p| p.1 == PageFill::Copied) {
                let from = page.max(start);
                let to = (page + PAGE_SIZE).min(file_end);
                let chunk = &mut buf[..(to - from) as usize];
                let n = image.read_at(segment.file_offset + (from - start), chunk);
                if n != chunk.len() {
                    return Err(EIO);
                }
                mm.poke(from, chunk)?;
            }
            page += PAGE_SIZE;
        }
    }
    Ok(image_end)
}

/// The trap frame a program starts with.
pub fn initial_frame(program: &LoadedProgram) -> TrapFrame {
    TrapFrame {
        rip: program.entry,
        cs: u64::from(USER_CS),
        rflags: 0x202,
        rsp: program.stack_pointer,
        ss: u64::from(USER_DS),
        ..TrapFrame::default()
    }
}

/// `execve` for the current task: on success the task returns to user
/// mode in the new program (`regs` is rewritten); on failure nothing changed.
pub fn execve(
    task: &Arc<Task>,
    start: ExecStart,
    argv: &[&[u8]],
    envp: &[&[u8]],
    regs: &mut UserContext,
) -> Result<(), i32> {
    let program = load(start, argv, envp)?;
    // The point of no return: the other threads go first, and a table of
    // descriptors shared with another process (CLONE_FILES) is copied
    // (Linux `unshare_files`).
    de_thread(task)?;
    unshare_files(task);
    // Descriptors marked FD_CLOEXEC are closed (Linux `do_close_on_exec`).
    let table = task.inner.lock().files.clone();
    let closed = table.map(|table| table.lock().take_close_on_exec());
    drop(closed);
    regs.frame = initial_frame(&program);
    regs.fpu = FpuState::init();

    // Linux `futex_exec_release`: the robust locks this thread holds in
    // the old program are released as if it had died.
    let (old_mm, robust_list) = {
        let mut inner = task.inner.lock();
        (
            inner.mm.as_deref().cloned(),
            core::mem::take(&mut inner.robust_list),
        )
    };
    if let (Some(old_mm), true) = (old_mm, robust_list != 0) {
        crate::syscall::robust_list::exit_robust_list(task, &old_mm, robust_list);
    }
    let old = {
        let mut inner = task.inner.lock();
        inner.fs_base = 0;
        inner.gs_base = 0;
        // The old program's alternate stack is gone with its memory; the
        // flags stay (as Linux's begin_new_exec leaves them).
        inner.sas.sp = 0;
        inner.sas.size = 0;
        // Like Linux, execve clears the keep-capabilities flag, and the
        // saved and file-system ids become the effective ones
        // (`cap_bprm_creds_from_file`).
        inner.cred.keep_caps = false;
        let cred = &mut inner.cred;
        (cred.suid, cred.fsuid, cred.sgid, cred.fsgid) =
            (cred.euid, cred.euid, cred.egid, cred.egid);
        // The parent may no longer move it to another group (setpgid).
        inner.fork_no_exec = false;
        // A private copy of the actions, with handlers reset (the new
        // program has none of the old one's code).
        let mut actions = inner.sighand.lock().clone();
        actions.reset_for_exec();
        inner.sighand = Arc::new(spin::Mutex::new(actions));
        inner.mm.replace(TaskMm::new(program.mm.clone()))
    };
    crate::mm::address_space::activate(Some(&program.mm));
    cpu::set_fs_base(0);
    cpu::set_gs_base(0);
    drop(old);
    task.set_comm(&program.comm);
    super::fork::release_vfork_parent(task);
    Ok(())
}

/// Gives `task` a private copy of its fd table if another task shares it.
fn unshare_files(task: &Arc<Task>) {
    let mut inner = task.inner.lock();
    if let Some(files) = &inner.files {
        if Arc::strong_count(files) > 1 {
            let copy = files.lock().clone();
            inner.files = Some(Arc::new(spin::Mutex::new(copy)));
        }
    }
}

/// Linux `de_thread`: every other thread of the exec'ing process is killed
/// and gone before the new program starts (it must not run on in the old
/// address space). EAGAIN if the process is being killed meanwhile.
///
/// Linux also lets a thread that is not the group leader exec: it takes
/// over the leader's pid. Tasks here keep their pid for life, so such a
/// thread kills the others but the leader, which stays (a known gap).
fn de_thread(task: &Arc<Task>) -> Result<(), i32> {
    let group = task.thread_group();
    let leader = task.is_group_leader();
    let other = |t: &Arc<Task>| {
        !Arc::ptr_eq(t, task)
            && (leader || !t.is_group_leader())
            && t.state() != super::task::TaskState::Dead
    };
    let kill = super::exit::signal_status(forkvm_abi::linux::signal::SIGKILL);
    for thread in group.threads().iter().filter(|t| other(t)) {
        thread.set_fatal(kill);
    }
    // A killed thread leaves on its next return to user mode or wake-up;
    // non-leader threads are released at exit, leaving no zombie.
    while group
        .find_thread(|t| other(t) && t.state() != super::task::TaskState::Zombie)
        .is_some()
    {
        if task.fatal_status().is_some() {
            return Err(crate::errno::EAGAIN);
        }
        crate::sched::yield_now();
    }
    Ok(())
}

/// Starts `path` as a new user process, a child of the current (kernel)
/// task, like Linux's user-mode helpers. Returns its pid.
pub fn spawn_user_process(path: &[u8], argv: &[&[u8]]) -> Result<super::task::Pid, i32> {
    use super::task::{TaskInner, TaskParts, TaskStack};
    use super::thread_group::{NewGroup, ThreadGroup};
    use crate::mm::kstack::KernelStack;

    let program = load(ExecStart::open(path)?, argv, &[])?;
    let mut stack = KernelStack::new().map_err(|_| ENOMEM)?;
    let ns = crate::process::initial_nsproxy()
        .pid_ns_for_children
        .clone();
    let pids = super::pid_ns::PidNumbers::alloc(&ns, &[])?;
    let pid = pids.global();
    let parent = crate::sched::current();
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let frame = initial_frame(&program);
    let rsp = switch::prepare_user_return(&mut stack, &frame, &FpuState::init());
    // Init's identity and limits (Linux `init_cred`, `INIT_RLIMITS`); it
    // leads its own process group and session. The tail is fork's.
    let cred = super::cred::Cred::root();
    let group = ThreadGroup::new(NewGroup {
        parent: Arc::downgrade(&parent),
        rlimits: super::rlimit::Rlimits::for_init(super::rlimit::max_threads()),
        ids: Some(super::pgrp::PgrpSession::new_leader(&pids)),
        exit_signal: crate::process::signal::SIGCHLD,
        oom_score_adj: 0,
    });
    group.set_pids(&pids);
    let task = super::fork::new_task(TaskParts {
        pids: Some(pids),
        group,
        stack: TaskStack::Own(stack),
        saved_rsp: rsp,
        sched: crate::sched::attr::SchedAttr::normal(),
        inner: TaskInner {
            exit_status: 0,
            comm: super::task::comm_from(name),
            mm: Some(TaskMm::new(program.mm)),
            clear_child_tid: 0,
            robust_list: 0,
            fs_base: 0,
            gs_base: 0,
            vfork_done: None,
            files: Some(Arc::new(spin::Mutex::new(
                super::files::FdTable::with_console(),
            ))),
            sighand: super::signal::SigHand::new_shared(),
            blocked: 0,
            pending: Default::default(),
            real_blocked: 0,
            saved_sigmask: None,
            sas: Default::default(),
            user_count: Some(super::cred::UserTaskCount::charge(&cred.user_ns, 0)),
            _thread_count: Some(super::ThreadCount::charge()),
            cred,
            fs: super::fs_struct::FsStruct::new_shared(),
            nsproxy: crate::process::initial_nsproxy(),
            sysvsem: None,
            io_context: None,
            fork_no_exec: false,
        },
    });
    super::fork::attach_new_task(&task);
    crate::sched::wake_up_new_task(task);
    Ok(pid)
}

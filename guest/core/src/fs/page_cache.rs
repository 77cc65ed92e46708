//! A regular file's contents (Linux's page cache of a ramfs inode: the
//! pages *are* the file). Each page is a frame from the frame allocator,
//! owned by the file (reference count 1) and returned when the file is
//! truncated over it or dropped (the last link and the last open file
//! gone). Pages never written are holes and read as zeros (sparse files).
//!
//! A built-in program (`programs.rs`) is a file whose bytes stay in the
//! kernel image until the first write or truncate copies them into pages.
//!
//! The frames are reached through [`PageFrames`], which the kernel's mm
//! sets at boot (its allocator and direct map); unit tests set boxed
//! pages with a live count.

use alloc::collections::BTreeMap;

use crate::errno::{EFBIG, ENOMEM};
use crate::mm::cow::DataFrame;

const PAGE: u64 = 4096;
/// Largest file size (Linux's `MAX_LFS_FILESIZE` on 64-bit).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The bytes of one regular file.
#[derive(Default)]
pub struct FileData {
    size: u64,
    /// Page index -> frame (guest-physical address).
    pages: BTreeMap<u64, DataFrame>,
    /// Bytes in the kernel image standing for the pages (built-in
    /// programs), until the first change.
    image: Option<&'static [u8]>,
}

impl FileData {
    /// A file whose contents are `image` (not copied until changed).
    pub fn from_image(image: &'static [u8]) -> FileData {
        FileData {
            size: image.len() as u64,
            pages: BTreeMap::new(),
            image: Some(image),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Frames the file holds.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// The whole contents, when they are an image in the kernel (exec
    /// needs no copy then).
    pub fn image(&self) -> Option<&'static [u8]> {
        self.image
    }

    /// Copies bytes from `offset` into `buf`; returns how many (0 at or
    /// past the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= self.size {
            return 0;
        }
        let n = buf.len().min((self.size - offset) as usize);
        if let Some(image) = self.image {
            buf[..n].copy_from_slice(&image[offset as usize..offset as usize + n]);
            return n;
        }
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let in_page = (at % PAGE) as usize;
            let len = (n - done).min(PAGE as usize - in_page);
            let chunk = &mut buf[done..done + len];
            match self.pages.get(&(at / PAGE)) {
                Some(&frame) => frames::read(frame, in_page, chunk),
                None => chunk.fill(0),
            }
            done += len;
        }
        n
    }

    /// Copies `buf` to `offset`, growing the file; ENOMEM when no frame
    /// is left (having written nothing), EFBIG past the largest size.
    /// Returns how many bytes were written (short if memory ran out).
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<usize, i32> {
        if buf.is_empty() {
            return Ok(0);
        }
        if offset >= MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let n = buf.len().min((MAX_FILE_SIZE - offset) as usize);
        self.materialize()?;
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let in_page = (at % PAGE) as usize;
            let len = (n - done).min(PAGE as usize - in_page);
            let frame = match self.pages.get(&(at / PAGE)) {
                Some(&frame) => frame,
                None => match frames::alloc_zeroed() {
                    Some(frame) => {
                        self.pages.insert(at / PAGE, frame);
                        frame
                    }
                    None if done == 0 => return Err(ENOMEM),
                    None => break,
                },
            };
            frames::write(frame, in_page, &buf[done..done + len]);
            done += len;
            self.size = self.size.max(at + len as u64);
        }
        Ok(done)
    }

    /// Sets the size (Linux `truncate`): pages past it are returned, the
    /// tail of the last one zeroed; growing makes a hole.
    pub fn truncate(&mut self, size: u64) -> Result<(), i32> {
        if size > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        self.materialize()?;
        if size < self.size {
            let first_gone = size.div_ceil(PAGE);
            let gone: alloc::vec::Vec<u64> =
                self.pages.range(first_gone..).map(|(&i, _)| i).collect();
            for index in gone {
                if let Some(frame) = self.pages.remove(&index) {
                    frames::free(frame);
                }
            }
            if !size.is_multiple_of(PAGE) {
                if let Some(&frame) = self.pages.get(&(size / PAGE)) {
                    let from = (size % PAGE) as usize;
                    frames::write(frame, from, &[0u8; PAGE as usize][from..]);
                }
            }
        }
        self.size = size;
        Ok(())
    }

    /// The frames of pages `first..first + count`, for a file mapping to
    /// map (`mm::file_map`); the caller takes its references while it
    /// still holds the file's lock. Pages past the end of the file are
    /// `None`. A hole gets its zeroed frame now, as a tmpfs fault does:
    /// every mapping must see later writes to it. A file in the kernel
    /// image is copied into pages first.
    pub fn frames_for_map(
        &mut self,
        first: u64,
        count: u64,
    ) -> Result<alloc::vec::Vec<Option<DataFrame>>, i32> {
        self.materialize()?;
        let in_file = self.size.div_ceil(PAGE);
        let mut frames = alloc::vec::Vec::new();
        frames
            .try_reserve_exact(count as usize)
            .map_err(|_| ENOMEM)?;
        for index in first..first.saturating_add(count) {
            let frame = match self.pages.get(&index) {
                Some(&frame) => Some(frame),
                None if index < in_file => {
                    let frame = frames::alloc_zeroed().ok_or(ENOMEM)?;
                    self.pages.insert(index, frame);
                    Some(frame)
                }
                None => None,
            };
            frames.push(frame);
        }
        Ok(frames)
    }

    /// The frame of page `index` for a fault in a mapping of the file
    /// (Linux's `filemap_fault`): `None` if the page lies wholly past the
    /// end of the file (SIGBUS). A hole gets its zeroed frame now, as a
    /// tmpfs fault allocates it, so every mapper and `read` share it. The
    /// caller takes its reference before it lets go of the file's lock.
    pub fn frame_for_fault(&mut self, index: u64) -> Result<Option<DataFrame>, i32> {
        if index >= self.size.div_ceil(PAGE) {
            return Ok(None);
        }
        self.materialize()?;
        if let Some(&frame) = self.pages.get(&index) {
            return Ok(Some(frame));
        }
        let frame = frames::alloc_zeroed().ok_or(ENOMEM)?;
        self.pages.insert(index, frame);
        Ok(Some(frame))
    }

    /// The pages of `first..first + count` the file already has in frames
    /// (index, frame), within its size: what a fault may map around the
    /// faulting page without allocating (Linux's `filemap_map_pages`).
    pub fn cached_frames(&self, first: u64, count: u64) -> alloc::vec::Vec<(u64, DataFrame)> {
        let end = first.saturating_add(count).min(self.size.div_ceil(PAGE));
        if self.image.is_some() || first >= end {
            return alloc::vec::Vec::new();
        }
        self.pages
            .range(first..end)
            .map(|(&index, &frame)| (index, frame))
            .collect()
    }

    /// Copies the kernel image's bytes into pages of their own.
    fn materialize(&mut self) -> Result<(), i32> {
        let Some(image) = self.image else {
            return Ok(());
        };
        let mut pages = BTreeMap::new();
        for (index, chunk) in image.chunks(PAGE as usize).enumerate() {
            let Some(frame) = frames::alloc_zeroed() else {
                pages.into_values().for_each(frames::free);
                return Err(ENOMEM);
            };
            frames::write(frame, 0, chunk);
            pages.insert(index as u64, frame);
        }
        self.pages = pages;
        self.image = None;
        Ok(())
    }
}

impl Drop for FileData {
    fn drop(&mut self) {
        for (_, frame) in core::mem::take(&mut self.pages) {
            frames::free(frame);
        }
    }
}

/// Where a file's pages live: data frame operations (plain functions: the
/// kernel's are mm's).
pub struct PageFrames {
    /// A zeroed frame, or `None` when memory is out.
    pub alloc_zeroed: fn() -> Option<DataFrame>,
    /// Gives a frame back.
    pub free: fn(DataFrame),
    /// Copies `buf.len()` bytes from the frame at an offset.
    pub read: fn(DataFrame, usize, &mut [u8]),
    /// Copies bytes into the frame at an offset.
    pub write: fn(DataFrame, usize, &[u8]),
}

static FRAMES: spin::Once<&'static PageFrames> = spin::Once::new();

/// Sets where file pages live; the first call wins (the kernel calls it
/// once at boot, before any file is written).
pub fn set_page_frames(frames: &'static PageFrames) {
    FRAMES.call_once(|| frames);
}

/// The frame operations [`FileData`] uses.
mod frames {
    use super::{PageFrames, FRAMES};
    use crate::mm::cow::DataFrame;

    fn get() -> &'static PageFrames {
        FRAMES
            .get()
            .expect("a file page is used before mm set the page frames")
    }

    pub fn alloc_zeroed() -> Option<DataFrame> {
        (get().alloc_zeroed)()
    }

    pub fn free(frame: DataFrame) {
        (get().free)(frame)
    }

    pub fn read(frame: DataFrame, offset: usize, buf: &mut [u8]) {
        (get().read)(frame, offset, buf)
    }

    pub fn write(frame: DataFrame, offset: usize, bytes: &[u8]) {
        (get().write)(frame, offset, bytes)
    }
}

/// Host stand-in for the frame allocator: boxed pages, counted, with an
/// optional limit to test running out.
#[cfg(test)]
pub mod backend {
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;

    use spin::Mutex;

    use crate::mm::cow::DataFrame;

    /// The next page's (made-up, page-aligned) address and the live pages.
    type Pages = (u64, BTreeMap<u64, Box<[u8; 4096]>>);
    static PAGES: Mutex<Pages> = Mutex::new((0x1000, BTreeMap::new()));
    std::thread_local! {
        /// Pages this test thread holds, and how many it may.
        pub static LIVE: core::cell::Cell<(usize, usize)> = const { core::cell::Cell::new((0, usize::MAX)) };
    }

    pub fn alloc_zeroed() -> Option<DataFrame> {
        let (live, limit) = LIVE.get();
        if live >= limit {
            return None;
        }
        LIVE.set((live + 1, limit));
        let mut pages = PAGES.lock();
        let phys = pages.0;
        pages.0 += 0x1000;
        pages.1.insert(phys, Box::new([0; 4096]));
        Some(DataFrame::from_entry(phys))
    }

    pub fn free(frame: DataFrame) {
        let (live, limit) = LIVE.get();
        LIVE.set((live - 1, limit));
        assert!(
            PAGES.lock().1.remove(&frame.phys()).is_some(),
            "double free"
        );
    }

    pub fn read(frame: DataFrame, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&PAGES.lock().1[&frame.phys()][offset..offset + buf.len()]);
    }

    pub fn write(frame: DataFrame, offset: usize, bytes: &[u8]) {
        PAGES.lock().1.get_mut(&frame.phys()).unwrap()[offset..offset + bytes.len()]
            .copy_from_slice(bytes);
    }

    /// Pages held by this thread's files.
    pub fn live() -> usize {
        LIVE.get().0
    }

    pub fn set_limit(limit: usize) {
        LIVE.set((LIVE.get().0, limit));
    }

    /// Makes file pages these boxed pages (for the whole test binary).
    pub fn install() {
        static FRAMES: super::PageFrames = super::PageFrames {
            alloc_zeroed,
            free,
            read,
            write,
        };
        super::set_page_frames(&FRAMES);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn sparse_writes_reads_and_truncation() {
        backend::install();
        let before = backend::live();
        {
            let mut f = FileData::default();
            assert_eq!(f.write_at(10_000, b"xyz"), Ok(3));
            assert_eq!(f.size(), 10_003);
            assert_eq!(f.pages(), 1, "the hole takes no frames");
            let mut buf = vec![7u8; 10_010];
            assert_eq!(f.read_at(0, &mut buf), 10_003);
            assert!(buf[..10_000].iter().all(|&b| b == 0));
            assert_eq!(&buf[10_000..10_003], b"xyz");
            assert_eq!(f.read_at(10_003, &mut buf), 0);
            // Across a page boundary.
            assert_eq!(f.write_at(4090, &[1; 20]), Ok(20));
            assert_eq!(f.pages(), 3);
            f.truncate(4095).unwrap();
            assert_eq!(f.pages(), 1);
            f.truncate(8192).unwrap();
            let mut tail = [9u8; 8];
            assert_eq!(f.read_at(4092, &mut tail), 8);
            assert_eq!(tail, [1, 1, 1, 0, 0, 0, 0, 0], "zeroed past the cut");
            assert_eq!(backend::live(), before + 1);
        }
        assert_eq!(
            backend::live(),
            before,
            "dropping the file frees its frames"
        );
    }

    #[test]
    fn images_are_copied_on_first_change() {
        backend::install();
        static IMAGE: [u8; 5000] = [3; 5000];
        let before = backend::live();
        let mut f = FileData::from_image(&IMAGE);
        let mut buf = [0u8; 4];
        assert_eq!(f.read_at(4998, &mut buf), 2);
        assert_eq!(backend::live(), before);
        f.write_at(0, b"A").unwrap();
        assert!(f.image().is_none());
        assert_eq!(backend::live(), before + 2);
        assert_eq!(f.read_at(0, &mut buf), 4);
        assert_eq!(buf, [b'A', 3, 3, 3]);
        drop(f);
        assert_eq!(backend::live(), before);
    }

    #[test]
    fn frames_for_a_mapping() {
        let before = backend::live();
        let mut f = FileData::default();
        f.write_at(0, b"a").unwrap();
        f.write_at(2 * PAGE, b"c").unwrap();
        let frames = f.frames_for_map(0, 5).unwrap();
        assert_eq!(frames.len(), 5);
        assert!(frames[..3].iter().all(Option::is_some));
        assert_eq!(f.pages(), 3, "the hole got its frame");
        assert_eq!(frames[3..], [None, None], "past the end");
        let again = f.frames_for_map(1, 4).unwrap();
        assert_eq!(again[..2], frames[1..3], "the same frames");
        assert_eq!(again[2..], [None, None]);
        assert_eq!(f.pages(), 3);
        drop(f);
        assert_eq!(backend::live(), before);
    }

    #[test]
    fn out_of_memory_is_enomem_or_a_short_write() {
        backend::install();
        let before = backend::live();
        backend::set_limit(before + 1);
        let mut f = FileData::default();
        assert_eq!(f.write_at(0, &[1; 6000]), Ok(4096));
        assert_eq!(f.write_at(8192, b"x"), Err(ENOMEM));
        assert_eq!(f.size(), 4096);
        backend::set_limit(usize::MAX);
        drop(f);
        assert_eq!(backend::live(), before);
        assert_eq!(
            FileData::default().write_at(MAX_FILE_SIZE, b"x"),
            Err(EFBIG)
        );
    }
}

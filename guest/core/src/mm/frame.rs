//! Physical page frames: allocation and reference counts.
//!
//! Every frame of RAM has a reference count (0 = free). Free frames sit on
//! two stacks: frames at 2 MiB-aligned addresses apart from the rest,
//! because the PVM host falls back to its emulator for good when a
//! page-table page sits at such an address. Data allocations use those
//! frames first; page-table allocations never get one.
//!
//! The allocator works on caller-provided metadata slices so the logic runs
//! unchanged in host unit tests.

/// Size of a frame.
pub const FRAME_SIZE: u64 = 4096;
/// Frames per 2 MiB.
const FRAMES_PER_2M: u32 = 512;

/// A physical frame number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pfn(pub u32);

impl Pfn {
    /// The frame's guest-physical address.
    pub fn phys(self) -> u64 {
        u64::from(self.0) * FRAME_SIZE
    }

    /// The frame containing `phys`.
    pub fn containing(phys: u64) -> Self {
        Pfn((phys / FRAME_SIZE) as u32)
    }

    fn is_2m_aligned(self) -> bool {
        self.0.is_multiple_of(FRAMES_PER_2M)
    }
}

/// What the allocator needs to know about a frame for page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameUse {
    /// Any frame (data pages, kernel stacks).
    Data,
    /// A page-table page: never 2 MiB-aligned.
    PageTable,
}

/// Frame allocator state.
pub struct FrameAllocator<'a> {
    /// Reference count per frame, indexed by PFN.
    refcounts: &'a mut [u16],
    /// Free frames not at 2 MiB-aligned addresses.
    free_normal: &'a mut [u32],
    normal_len: usize,
    /// Free 2 MiB-aligned frames.
    free_aligned: &'a mut [u32],
    aligned_len: usize,
    /// Frames handed to the allocator in total.
    total: usize,
}

impl<'a> FrameAllocator<'a> {
    /// An allocator with no frames. `refcounts` must have one entry per PFN
    /// up to the highest frame that will be added; the two stacks must be
    /// large enough for the frames added (`free_aligned` needs one entry per
    /// 512 frames).
    pub fn new(
        refcounts: &'a mut [u16],
        free_normal: &'a mut [u32],
        free_aligned: &'a mut [u32],
    ) -> Self {
        refcounts.fill(0);
        Self {
            refcounts,
            free_normal,
            normal_len: 0,
            free_aligned,
            aligned_len: 0,
            total: 0,
        }
    }

    /// Hands the frames `[first, first + count)` to the allocator.
    pub fn add_range(&mut self, first: Pfn, count: u32) {
        // Push in reverse so allocation starts at the lowest address.
        for pfn in (first.0..first.0 + count).rev() {
            assert!(
                (pfn as usize) < self.refcounts.len(),
                "frame {pfn} beyond the refcount table"
            );
            self.push_free(Pfn(pfn));
            self.total += 1;
        }
    }

    fn push_free(&mut self, pfn: Pfn) {
        if pfn.is_2m_aligned() {
            self.free_aligned[self.aligned_len] = pfn.0;
            self.aligned_len += 1;
        } else {
            self.free_normal[self.normal_len] = pfn.0;
            self.normal_len += 1;
        }
    }

    /// Allocates a frame with reference count 1, or `None` when out of memory.
    pub fn alloc(&mut self, usage: FrameUse) -> Option<Pfn> {
        let pfn = match usage {
            FrameUse::Data if self.aligned_len > 0 => {
                self.aligned_len -= 1;
                self.free_aligned[self.aligned_len]
            }
            _ if self.normal_len > 0 => {
                self.normal_len -= 1;
                self.free_normal[self.normal_len]
            }
            _ => return None,
        };
        self.refcounts[pfn as usize] = 1;
        Some(Pfn(pfn))
    }

    /// Takes another reference to an allocated frame (copy-on-write sharing).
    pub fn get(&mut self, pfn: Pfn) {
        let count = &mut self.refcounts[pfn.0 as usize];
        assert!(*count > 0, "get on free frame {:#x}", pfn.phys());
        *count = count
            .checked_add(1)
            .expect("frame reference count overflow");
    }

    /// Drops a reference; the frame is freed when the last one goes.
    /// Returns whether it was freed.
    pub fn put(&mut self, pfn: Pfn) -> bool {
        let count = &mut self.refcounts[pfn.0 as usize];
        assert!(*count > 0, "put on free frame {:#x}", pfn.phys());
        *count -= 1;
        if *count == 0 {
            self.push_free(pfn);
            true
        } else {
            false
        }
    }

    /// The reference count of a frame.
    pub fn refcount(&self, pfn: Pfn) -> u16 {
        self.refcounts[pfn.0 as usize]
    }

    /// Frames handed to the allocator.
    pub fn total_frames(&self) -> usize {
        self.total
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> usize {
        self.normal_len + self.aligned_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_allocator(frames: u32, test: impl FnOnce(&mut FrameAllocator)) {
        let mut refcounts = vec![0u16; frames as usize];
        let mut normal = vec![0u32; frames as usize];
        let mut aligned = vec![0u32; (frames / FRAMES_PER_2M + 1) as usize];
        let mut allocator = FrameAllocator::new(&mut refcounts, &mut normal, &mut aligned);
        allocator.add_range(Pfn(0), frames);
        test(&mut allocator);
    }

    #[test]
    fn counts_free_and_total() {
        with_allocator(1024, |a| {
            assert_eq!(a.total_frames(), 1024);
            assert_eq!(a.free_frames(), 1024);
            let f = a.alloc(FrameUse::Data).unwrap();
            assert_eq!(a.free_frames(), 1023);
            assert!(a.put(f));
            assert_eq!(a.free_frames(), 1024);
        });
    }

    #[test]
    fn page_tables_never_get_2m_aligned_frames() {
        with_allocator(2048, |a| {
            let mut got = Vec::new();
            while let Some(f) = a.alloc(FrameUse::PageTable) {
                assert_ne!(
                    f.0 % FRAMES_PER_2M,
                    0,
                    "page table at 2 MiB-aligned {:#x}",
                    f.phys()
                );
                got.push(f);
            }
            assert_eq!(got.len(), 2048 - 4);
            // The aligned frames are still there for data.
            for _ in 0..4 {
                assert_eq!(a.alloc(FrameUse::Data).unwrap().0 % FRAMES_PER_2M, 0);
            }
            assert_eq!(a.alloc(FrameUse::Data), None);
        });
    }

    #[test]
    fn data_uses_aligned_frames_first() {
        with_allocator(1024, |a| {
            assert_eq!(a.alloc(FrameUse::Data), Some(Pfn(0)));
            assert_eq!(a.alloc(FrameUse::Data), Some(Pfn(512)));
            assert_eq!(a.alloc(FrameUse::Data), Some(Pfn(1)));
        });
    }

    #[test]
    fn shared_frame_freed_by_last_put() {
        with_allocator(16, |a| {
            let f = a.alloc(FrameUse::Data).unwrap();
            a.get(f);
            assert_eq!(a.refcount(f), 2);
            assert!(!a.put(f));
            assert_eq!(a.free_frames(), 15);
            assert!(a.put(f));
            assert_eq!(a.free_frames(), 16);
        });
    }

    #[test]
    #[should_panic(expected = "put on free frame")]
    fn double_free_is_caught() {
        with_allocator(16, |a| {
            let f = a.alloc(FrameUse::Data).unwrap();
            a.put(f);
            a.put(f);
        });
    }

    #[test]
    fn exhaustion_returns_none() {
        with_allocator(8, |a| {
            for _ in 0..8 {
                assert!(a.alloc(FrameUse::Data).is_some());
            }
            assert_eq!(a.alloc(FrameUse::Data), None);
        });
    }
}

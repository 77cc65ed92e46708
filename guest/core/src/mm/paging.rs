//! x86-64 4-level page tables: walking and mapping 4 KiB pages.
//!
//! The walker reaches table pages through [`TableAccess`], so the same code
//! runs on the kernel's direct map and, in unit tests, on fake memory.

/// Page-table entry bits.
pub mod flags {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const HUGE: u64 = 1 << 7;
    /// Instruction fetches fault (needs EFER.NXE).
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// Physical-address bits of an entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a mapping failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a page-table page.
    OutOfMemory,
    /// The address is already mapped.
    AlreadyMapped,
    /// A huge page covers the address.
    HugePage,
    /// The address is not canonical or not page aligned.
    BadAddress,
}

/// A page-table page, by guest-physical address. Only mm makes one: the
/// walkers here from a present table entry, the kernel's
/// [`TableAccess::alloc_table`] from a fresh frame, and mm's code that
/// knows a root ([`TablePage::new`], `unsafe`). So [`TableAccess::table`]
/// is only ever asked for a table page, never for an arbitrary address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TablePage(u64);

impl TablePage {
    /// The table page at `phys`.
    ///
    /// # Safety
    /// `phys` is the 4 KiB-aligned address of a page-table page (or of a
    /// zeroed frame about to become one) that stays one for as long as
    /// this value is used: nothing else reads or writes it as other data.
    pub const unsafe fn new(phys: u64) -> TablePage {
        TablePage(phys)
    }

    /// The table a present, non-huge entry of an upper-level table points
    /// to (the walkers keep those entries pointing at table pages).
    pub(crate) const fn from_entry(entry: u64) -> TablePage {
        TablePage(entry & ADDRESS_MASK)
    }

    pub fn phys(self) -> u64 {
        self.0
    }
}

/// Access to page-table pages.
pub trait TableAccess {
    /// The 512 entries of `page`.
    fn table(&mut self, page: TablePage) -> &mut [u64; 512];
    /// A zeroed page for a new table, or `None` when out of memory.
    fn alloc_table(&mut self) -> Option<TablePage>;
}

/// Table index of `vaddr` at `level` (4 = PML4 ... 1 = PT).
pub fn index(vaddr: u64, level: u32) -> usize {
    ((vaddr >> (12 + 9 * (level - 1))) & 511) as usize
}

fn is_canonical(vaddr: u64) -> bool {
    let top = vaddr >> 47;
    top == 0 || top == 0x1ffff
}

/// Maps the 4 KiB page at `vaddr` to `phys` with `leaf_flags` in the tables
/// rooted at `root`. Missing tables are created with `table_flags`.
pub fn map_page(
    access: &mut impl TableAccess,
    root: TablePage,
    vaddr: u64,
    phys: u64,
    leaf_flags: u64,
    table_flags: u64,
) -> Result<(), MapError> {
    if !is_canonical(vaddr) || !vaddr.is_multiple_of(4096) || phys & !ADDRESS_MASK != 0 {
        return Err(MapError::BadAddress);
    }
    let mut table = root;
    for level in (2..=4).rev() {
        let i = index(vaddr, level);
        let entry = access.table(table)[i];
        table = if entry & flags::PRESENT == 0 {
            let new = access.alloc_table().ok_or(MapError::OutOfMemory)?;
            access.table(table)[i] = new.phys() | table_flags | flags::PRESENT;
            new
        } else if entry & flags::HUGE != 0 {
            return Err(MapError::HugePage);
        } else {
            TablePage::from_entry(entry)
        };
    }
    let slot = &mut access.table(table)[index(vaddr, 1)];
    if *slot & flags::PRESENT != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *slot = phys | leaf_flags | flags::PRESENT;
    Ok(())
}

/// Removes the 4 KiB mapping of `vaddr` and returns its old entry (the
/// caller frees the frame and invalidates the TLB entry). Tables are kept.
pub fn unmap_page(access: &mut impl TableAccess, root: TablePage, vaddr: u64) -> Option<u64> {
    let mut table = root;
    for level in (2..=4).rev() {
        let entry = access.table(table)[index(vaddr, level)];
        if entry & flags::PRESENT == 0 || entry & flags::HUGE != 0 {
            return None;
        }
        table = TablePage::from_entry(entry);
    }
    let slot = &mut access.table(table)[index(vaddr, 1)];
    let old = *slot;
    if old & flags::PRESENT == 0 {
        return None;
    }
    *slot = 0;
    Some(old)
}

/// The entry mapping `vaddr` (leaf PTE, or the huge-page entry), if present.
pub fn translate(access: &mut impl TableAccess, root: TablePage, vaddr: u64) -> Option<u64> {
    let mut table = root;
    for level in (1..=4).rev() {
        let entry = access.table(table)[index(vaddr, level)];
        if entry & flags::PRESENT == 0 {
            return None;
        }
        if level == 1 || entry & flags::HUGE != 0 {
            return Some(entry);
        }
        table = TablePage::from_entry(entry);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Page tables in a hash map, with a limited number of table pages.
    struct FakeMemory {
        tables: HashMap<u64, Box<[u64; 512]>>,
        next: u64,
        budget: usize,
    }

    impl FakeMemory {
        fn new(budget: usize) -> Self {
            let mut tables = HashMap::new();
            tables.insert(0x1000, Box::new([0; 512]));
            Self {
                tables,
                next: 0x2000,
                budget,
            }
        }
    }

    impl TableAccess for FakeMemory {
        fn table(&mut self, page: TablePage) -> &mut [u64; 512] {
            self.tables
                .get_mut(&page.phys())
                .expect("walk reached a page that is not a table")
        }
        fn alloc_table(&mut self) -> Option<TablePage> {
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            let phys = self.next;
            self.next += 0x1000;
            self.tables.insert(phys, Box::new([0; 512]));
            Some(TablePage::from_entry(phys))
        }
    }

    const ROOT: TablePage = TablePage::from_entry(0x1000);
    const TABLE: u64 = flags::WRITABLE | flags::USER;

    #[test]
    fn maps_and_translates() {
        let mut mem = FakeMemory::new(3);
        map_page(&mut mem, ROOT, 0x40_0000, 0xabc000, flags::USER, TABLE).unwrap();
        let entry = translate(&mut mem, ROOT, 0x40_0000).unwrap();
        assert_eq!(entry & ADDRESS_MASK, 0xabc000);
        assert_eq!(entry & flags::USER, flags::USER);
        assert_eq!(translate(&mut mem, ROOT, 0x40_1000), None);
    }

    #[test]
    fn neighbours_share_tables() {
        let mut mem = FakeMemory::new(3);
        for page in 0..512 {
            map_page(
                &mut mem,
                ROOT,
                0x40_0000 + page * 4096,
                page * 4096,
                0,
                TABLE,
            )
            .unwrap();
        }
        assert_eq!(
            mem.budget, 0,
            "one PDPT, PD and PT serve a whole 2 MiB range"
        );
    }

    #[test]
    fn reports_exhaustion_and_double_maps() {
        let mut mem = FakeMemory::new(2);
        assert_eq!(
            map_page(&mut mem, ROOT, 0x40_0000, 0, 0, TABLE),
            Err(MapError::OutOfMemory)
        );
        let mut mem = FakeMemory::new(3);
        map_page(&mut mem, ROOT, 0x40_0000, 0, 0, TABLE).unwrap();
        assert_eq!(
            map_page(&mut mem, ROOT, 0x40_0000, 0, 0, TABLE),
            Err(MapError::AlreadyMapped)
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        let mut mem = FakeMemory::new(3);
        assert_eq!(
            map_page(&mut mem, ROOT, 0x8000_0000_0000, 0, 0, TABLE),
            Err(MapError::BadAddress)
        );
        assert_eq!(
            map_page(&mut mem, ROOT, 0x40_0001, 0, 0, TABLE),
            Err(MapError::BadAddress)
        );
    }

    #[test]
    fn huge_pages_block_small_maps() {
        let mut mem = FakeMemory::new(3);
        map_page(&mut mem, ROOT, 0x40_0000, 0, 0, TABLE).unwrap();
        // Turn the PD entry covering 0x400000 into a 2 MiB page.
        let pdpt = TablePage::from_entry(mem.table(ROOT)[0]);
        let pd = TablePage::from_entry(mem.table(pdpt)[0]);
        mem.table(pd)[2] = flags::PRESENT | flags::HUGE;
        assert_eq!(
            map_page(&mut mem, ROOT, 0x40_0000, 0, 0, TABLE),
            Err(MapError::HugePage)
        );
        assert_eq!(
            translate(&mut mem, ROOT, 0x40_0000),
            Some(flags::PRESENT | flags::HUGE)
        );
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The masked write-protect as a page-table walk: clear W on the 4K leaf
//! entries of the pages in a bitmap word, one descent per leaf table.
//!
//! KVM's masked write-protect (clear_dirty_pt_masked() on the x86 TDP MMU)
//! walks from the root to the leaf table again for every 64-page word: a
//! 1 GiB harvest at 100 % dirty descends 4096 times to visit 512 leaf
//! tables.  A [`Walker`] remembers, per level, the last table it stepped
//! into and the range of pages that table maps; the next word starts from
//! the lowest remembered table that maps its first page, so consecutive
//! words of one leaf table (8 of them) cost one descent between them.
//!
//! Remembering tables across words is sound only while the tree cannot
//! change shape: the caller holds the MMU lock for writing for the walker's
//! whole life (on the TDP MMU nothing links, unlinks or frees a table
//! without it; the lockless fast page fault only changes leaf entries, with
//! a compare-and-exchange, and only sets W).  Leaf entries are read and
//! cleared atomically: the fast path and the CPU's A/D updates race with us.
//!
//! What KVM's function does beside clearing W, and what this walker does:
//! - 4K leaves only: huge leaves in the range are left alone and reported
//!   ([`Protected::huge`]); the caller passes such a word to KVM's function
//!   when that matters (x86: manual protect with initially-set bitmaps,
//!   where KVM splits or write-protects the huge page; arm64: always, as
//!   KVM write-protects stage-2 blocks too).
//! - Entries not present are skipped, tables included: on arm64 a table
//!   descriptor that write-protect-all made pending is invalid, and every
//!   page under it is write-protected before the guest can reach it again.
//! - Non-present entries and entries already without W are skipped.
//! - Every entry whose W this walker cleared is handed to the caller's
//!   `cleared` callback with its old value (KVM marks its page dirty).
//! - Only W changes: the MMU-writable and A/D bits stay, so the fast page
//!   fault can give W back on the next write and log it.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

use core::sync::atomic::{AtomicU64, Ordering};

/// Index bits per level: 512 entries per table.
pub const LEVEL_BITS: u32 = 9;
/// Entries per table.
pub const ENTRIES: usize = 1 << LEVEL_BITS;
/// Deepest tree walked: 5-level paging.
pub const MAX_LEVEL: usize = 5;

/// The entry bits of the running configuration.
#[derive(Clone, Copy, Debug)]
pub struct EntryBits {
    /// Set in every present entry.
    pub present: u64,
    /// The W bit (x86) or S2AP[1] (arm64): cleared to write-protect.
    pub writable: u64,
    /// Above level 1, a present entry points to a table when its
    /// `table_mask` bits are `table_bits`; else it is a huge leaf (x86:
    /// the PS bit clear; arm64: the table bit set).
    pub table_mask: u64,
    /// See `table_mask`.
    pub table_bits: u64,
    /// Bits that the hardware may set in a present leaf while we hold
    /// `mmu_lock` for write (arm64: AF, with stage 2's hardware Access
    /// flag); no software may change a writable leaf then.  A leaf that has
    /// them all set is write-protected with a plain store, as KVM's own
    /// walk does; 0: always an atomic AND (x86, where KVM's A/D masks are
    /// its own).
    pub quiet: u64,
}

/// Where the tables are.  A table is named by a `Table` handle; the walker
/// gets handles only from [`Walker::new`] (the root) and from `child`.
pub trait Tables {
    /// A table's handle.
    type Table: Copy;
    /// The table that a present non-leaf entry points to.
    fn child(&self, entry: u64) -> Self::Table;
    /// Entry `index` of `table` (below [`ENTRIES`], or below the root's
    /// entries for the root).
    fn entry(&self, table: Self::Table, index: usize) -> &AtomicU64;
}

impl<T: Tables> Tables for &T {
    type Table = T::Table;

    fn child(&self, entry: u64) -> Self::Table {
        (**self).child(entry)
    }

    fn entry(&self, table: Self::Table, index: usize) -> &AtomicU64 {
        (**self).entry(table, index)
    }
}

/// What one [`Walker::protect`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protected {
    /// Leaf entries whose W was cleared.
    pub cleared: u32,
    /// Whether a huge leaf maps some page of the mask (left alone).
    pub huge: bool,
}

/// Counts of a walker's life, for the module's counters and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Words handed to [`Walker::protect`].
    pub words: u64,
    /// Table entries read to step down a level (the cost the cache saves).
    pub steps: u64,
    /// Leaf tables stepped into from the level above.
    pub leaf_tables: u64,
    /// Leaf entries whose W was cleared.
    pub cleared: u64,
    /// Of those, the ones cleared with a plain store (see
    /// [`EntryBits::quiet`]).
    pub cleared_plain: u64,
}

/// Pages one entry of a level-`level` table maps: 1 at level 1.
const fn entry_pages(level: usize) -> u64 {
    1 << (LEVEL_BITS as usize * (level - 1))
}

/// Index of `gfn`'s entry in a table of `entries` entries at `level`.
fn index(gfn: u64, level: usize, entries: usize) -> usize {
    ((gfn / entry_pages(level)) as usize) & (entries - 1)
}

/// The walker of one tree, e.g. one TDP MMU root.
pub struct Walker<T: Tables> {
    tables: T,
    bits: EntryBits,
    root_level: usize,
    /// Entries of the root table: 512, or more where the start level's
    /// tables are concatenated (arm64 stage 2, up to 16 tables).
    root_entries: usize,
    root: T::Table,
    /// `path[l]`, if bit `l` of `cached` is set: the last table of level
    /// `l` (below the root's) stepped into, and the first page it maps.
    /// Not `Option`s: an array of `None`s was built on the stack and copied
    /// in with a `memcpy` call per `mmu_lock` section (tools/tcg-profile).
    path: [(T::Table, u64); MAX_LEVEL],
    cached: u8,
    /// Counts so far.
    pub stats: WalkStats,
}

/// Where a page's leaf entry is.
enum Leaf<Table> {
    /// In this level-1 table.
    Table(Table),
    /// Nothing maps the pages up to (not including) this page.
    Absent(u64),
    /// A huge leaf maps the pages up to (not including) this page.
    Huge(u64),
}

impl<T: Tables> Walker<T> {
    /// A walker of the tree whose root table is `root`, of level
    /// `root_level` (1 to [`MAX_LEVEL`]) and `root_entries` entries (a
    /// power of two, at least [`ENTRIES`]), mapping pages from 0.
    pub fn new(
        tables: T,
        bits: EntryBits,
        root: T::Table,
        root_level: usize,
        root_entries: usize,
    ) -> Self {
        assert!((1..=MAX_LEVEL).contains(&root_level));
        assert!(root_entries.is_power_of_two() && root_entries >= ENTRIES);
        Walker {
            tables,
            bits,
            root_level,
            root_entries,
            root,
            path: [(root, 0); MAX_LEVEL],
            cached: 0,
            stats: WalkStats::default(),
        }
    }

    /// The lowest remembered table that maps `gfn`, and its level.
    fn lowest_cached(&self, gfn: u64) -> (T::Table, usize) {
        for level in 1..self.root_level {
            let (table, first) = self.path[level];
            if self.cached & 1 << level != 0 && gfn.wrapping_sub(first) < entry_pages(level + 1) {
                return (table, level);
            }
        }
        (self.root, self.root_level)
    }

    /// Finds the leaf table of `gfn`, stepping down from the lowest
    /// remembered table that maps it.
    fn leaf(&mut self, gfn: u64) -> Leaf<T::Table> {
        let (mut table, mut level) = self.lowest_cached(gfn);
        while level > 1 {
            // Acquire: the child table's entries were written before the
            // entry that links it was (KVM links with a store-release or
            // under the lock we hold); read them after it.
            let entries = if level == self.root_level {
                self.root_entries
            } else {
                ENTRIES
            };
            let entry = self
                .tables
                .entry(table, index(gfn, level, entries))
                .load(Ordering::Acquire);
            self.stats.steps += 1;
            let end = (gfn / entry_pages(level) + 1) * entry_pages(level);
            if entry & self.bits.present == 0 {
                return Leaf::Absent(end);
            }
            if entry & self.bits.table_mask != self.bits.table_bits {
                return Leaf::Huge(end);
            }
            table = self.tables.child(entry);
            level -= 1;
            self.path[level] = (table, gfn - gfn % entry_pages(level + 1));
            self.cached |= 1 << level;
            if level == 1 {
                self.stats.leaf_tables += 1;
            }
        }
        Leaf::Table(table)
    }

    /// Clears W on the 4K leaf entries of the pages `gfn + i` for every bit
    /// `i` set in `mask`, and calls `cleared(old)` for each entry it changed
    /// with the entry's value before.  `gfn` need not be aligned: the mask
    /// may span two leaf tables.
    pub fn protect(&mut self, gfn: u64, mask: u64, mut cleared: impl FnMut(u64)) -> Protected {
        let mut done = Protected::default();
        let mut plain = 0;
        let mut left = mask;
        self.stats.words += 1;
        while left != 0 {
            let first = gfn + u64::from(left.trailing_zeros());
            // The bits up to the end of what `leaf` found.
            let end = match self.leaf(first) {
                Leaf::Table(table) => {
                    let end = (first | (ENTRIES as u64 - 1)) + 1;
                    for bit in Bits(left & below(end - gfn)) {
                        let page = gfn + u64::from(bit);
                        let entry = self.tables.entry(table, index(page, 1, ENTRIES));
                        if let Some(by_store) = self.clear_w(entry, &mut cleared) {
                            done.cleared += 1;
                            plain += u32::from(by_store);
                        }
                    }
                    end
                }
                Leaf::Absent(end) => end,
                Leaf::Huge(end) => {
                    done.huge = true;
                    end
                }
            };
            left &= !below(end - gfn);
        }
        self.stats.cleared += u64::from(done.cleared);
        self.stats.cleared_plain += u64::from(plain);
        done
    }

    /// Clears W on one present leaf entry; `Some` if this call cleared it,
    /// `Some(true)` if with a plain store.
    fn clear_w(&self, entry: &AtomicU64, cleared: &mut impl FnMut(u64)) -> Option<bool> {
        let w = self.bits.writable;
        // A plain load first: entries already without W (the fast path has
        // not given it back since the last harvest) cost no locked write.
        let now = entry.load(Ordering::Relaxed);
        if now & self.bits.present == 0 || now & w == 0 {
            return None;
        }
        let quiet = self.bits.quiet;
        if quiet != 0 && now & quiet == quiet {
            // Nothing else can change this entry now (see
            // `EntryBits::quiet`): a store, as KVM's WRITE_ONCE() under
            // mmu_lock held for write.  Under TCG an atomic AND per entry
            // was a few percent of a ring reset's time on arm64.  The TLB
            // flush that follows orders it (its DSB), as it does KVM's.
            entry.store(now & !w, Ordering::Relaxed);
            cleared(now);
            return Some(true);
        }
        // The fast page fault may change the entry at the same time (it only
        // sets W, never clears it), and the CPU may set A or D: an atomic
        // AND keeps their bits and tells whether W was still ours to clear.
        // SeqCst like the kernel's atomic64_fetch_and(), fully ordered: the
        // TLB flush that follows the harvest must see W gone.
        let old = entry.fetch_and(!w, Ordering::SeqCst);
        if old & w == 0 {
            return None;
        }
        cleared(old);
        Some(false)
    }
}

/// The bits below bit `n` of a word (all of them from 64 on).
fn below(n: u64) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1 << n) - 1
    }
}

/// The set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

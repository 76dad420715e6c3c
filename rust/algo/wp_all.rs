// SPDX-License-Identifier: GPL-2.0

//! Write-protect-all by generation, the MMU-independent part, after the
//! idea of Xiao Guangrong's patch series "KVM: MMU: fast write protect"
//! (its kvm_mmu_write_protect_all_pages()).
//!
//! `KVM_WRITE_PROTECT_ALL_MEM` must make every later guest write to a
//! dirty-logged page fault at least once, in O(1).  On a tree whose non-leaf
//! entries carry a write permission that applies to everything below them
//! (x86 paging, hence the TDP and shadow MMUs), it is enough to clear W on
//! the entries of each root and move the protection down lazily, one table
//! at a time, on the write faults that follow:
//!
//! - [`VmWp`] holds the VM's generation.  [`VmWp::write_protect_all`] bumps
//!   it; the caller clears W on the present entries of every root, then
//!   flushes TLBs.  The caller excludes every push-down while it does so
//!   (x86: `mmu_lock` held for write; push-downs run with it held for read).
//! - Each page table carries a [`TableWp`]: the generation its entries were
//!   last protected at, and a record of which of its entries may be
//!   writable.
//! - A write fault walks from the root down.  At each non-leaf entry without
//!   W, the child table is brought to the VM's generation
//!   ([`TableWp::push_down`]: W cleared on each entry the record names, then
//!   the new generation published), and only then the entry gets W back.
//!   At the leaf, the MMU's own fault path makes the page writable and logs
//!   it, after telling the leaf's table ([`TableWp::note_writable`]).
//!
//! Why no write after a WP-all goes unlogged: after it, every root entry
//! lacks W, so a write faults unless the whole path was made writable again
//! since.  An entry gets W back only after its child table is current, i.e.
//! after W was cleared on every entry of the child that could have had it
//! (the record is a superset: an entry is recorded *before* it gets W, and a
//! record is dropped only by the push-down that clears that W).  By
//! induction down the path, the leaf is writable only if it was made
//! writable after the WP-all, by a fault that logged it.
//!
//! Who may race whom, and what keeps each race safe:
//! - WP-all against push-downs: excluded by the caller's lock (above).
//! - Push-down against push-down of the same table: the first one claims the
//!   table (a flag in its generation word); the others see the claim and
//!   retry their fault, so a table's record is never swapped by two passes.
//! - Push-down against `note_writable` of the same table: cannot happen on
//!   the locked fault path.  A fault makes an entry writable only after its
//!   walk found the table current, and the table cannot become stale again
//!   until the next WP-all, which is excluded.  The lockless fast path
//!   (x86's `fast_page_fault`) is not excluded by anything: it records
//!   through [`TableWp::fast_begin`] and [`TableWp::fast_end`], which keep
//!   the record a superset against a racing push-down.
//! - New tables start current with nothing recorded, and are linked by an
//!   entry without W, their own entries without W too (a split huge mapping
//!   loses W on its small entries: its W may date from before the last
//!   WP-all).  The next fault's walk gives the link W.  A split table made
//!   current with its entries' W kept would let writes go unlogged (the
//!   model test shows it).
//!
//! Architectures without hierarchical write permission (arm64 stage 2) stop
//! writes below a table entry another way: `wp_all_stage2.rs`.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

use core::sync::atomic::{AtomicU64, Ordering};

/// Entries per page table (x86 4-level and 5-level paging, arm64 4K granule).
pub const ENTRIES: usize = 512;
const WORDS: usize = ENTRIES / 64;

/// Set in a table's generation word while one fault pushes protection down
/// into it.  Generations count WP-all calls, so they never reach this bit.
const CLAIMED: u64 = 1 << 63;

/// The VM's write-protect-all generation.  `repr(C)`: the kernel keeps it
/// in `struct kvm_dirty_vm`.
#[repr(C)]
pub struct VmWp {
    gen: AtomicU64,
}

impl VmWp {
    /// A VM that has never write-protected all memory: every table is
    /// current (generation 0).
    pub const fn new() -> Self {
        Self {
            gen: AtomicU64::new(0),
        }
    }

    /// The generation faults must bring tables to.  Stable while the caller
    /// excludes [`VmWp::write_protect_all`].
    pub fn generation(&self) -> u64 {
        self.gen.load(Ordering::Acquire)
    }

    /// Starts a new generation and returns it.  The caller must exclude every
    /// push-down, then clear W on the present entries of every root with
    /// `protect_roots`, then flush TLBs (after this returns).
    pub fn write_protect_all(&self, protect_roots: impl FnOnce(u64)) -> u64 {
        let gen = self.gen.load(Ordering::Relaxed) + 1;
        // Release: a fault that sees the new generation also sees the root
        // entries without W (it reads them after; the caller's lock orders
        // both anyway).
        self.gen.store(gen, Ordering::Release);
        protect_roots(gen);
        gen
    }
}

impl Default for VmWp {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`TableWp::push_down`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushDown {
    /// The table was already current: the parent entry may get W.
    Current,
    /// This call protected the table's recorded entries and made it current:
    /// the parent entry may get W.
    Pushed {
        /// Entries whose W this call cleared (they were writable).
        protected: u32,
        /// Entries the record named (the loads this call made).
        visited: u32,
    },
    /// Another fault is pushing protection into this table right now: the
    /// parent entry must not get W yet; retry the fault.
    Busy,
}

impl PushDown {
    /// Whether the parent entry may be given W.
    pub fn parent_may_write(self) -> bool {
        !matches!(self, PushDown::Busy)
    }
}

/// A page table's write-protect-all state.  `repr(C)`: the kernel keeps it
/// in each page table's `struct kvm_dirty_table`, zeroed at allocation.
#[repr(C)]
pub struct TableWp {
    /// The generation the entries were last protected at, | [`CLAIMED`].
    gen: AtomicU64,
    /// Bit i set: entry i may be writable (a superset of the writable ones).
    maybe_writable: [AtomicU64; WORDS],
}

impl TableWp {
    /// The state of a table a fault installs now, empty, under an entry its
    /// walk has just made current: current at the VM's generation `gen`.
    pub fn new_empty(gen: u64) -> Self {
        Self {
            gen: AtomicU64::new(gen),
            maybe_writable: Default::default(),
        }
    }

    /// Makes a table that is about to be linked, and that no other CPU can
    /// reach yet, current at `gen` with nothing recorded: the caller has
    /// cleared W on all its entries.
    pub fn init_current(&self, gen: u64) {
        for word in &self.maybe_writable {
            word.store(0, Ordering::Relaxed);
        }
        // Release: linking the table publishes it (the link is a release
        // cmpxchg too); this keeps the order obvious.
        self.gen.store(gen, Ordering::Release);
    }

    /// Whether the table is current at VM generation `gen` (no push-down
    /// needed, none running).
    pub fn is_current(&self, gen: u64) -> bool {
        // Acquire: pairs with the Release that published the generation, so
        // the W clears of that push-down are visible before the caller gives
        // the parent entry W.
        self.gen.load(Ordering::Acquire) == gen
    }

    /// Records that entry `index` may be writable.  Call before the entry is
    /// given W, with the table current (see the module comment).
    pub fn note_writable(&self, index: usize) {
        // A push-down of this table cannot run now (module comment); the one
        // after the next WP-all is ordered after this by the caller's lock.
        // SeqCst anyway: it costs nothing next to a fault and needs no proof.
        self.maybe_writable[index / 64].fetch_or(1 << (index % 64), Ordering::SeqCst);
    }

    /// The lockless fast path (x86 `fast_page_fault`) is about to give
    /// entry `index` W, having found W on every entry above the table (so
    /// the table was current when it looked): records the entry, and
    /// returns the generation word to pass to [`TableWp::fast_end`] after
    /// the fast path's cmpxchg, or `None` if a push-down has claimed the
    /// table (the fault then takes the locked path).
    ///
    /// No lock excludes a push-down of the table here.  One that takes the
    /// record between this call and the cmpxchg finds the entry without W
    /// and drops it from the record; it must have claimed the table after
    /// the word was read, so [`TableWp::fast_end`] sees the word moved and
    /// records the entry again, for the push-down after the next WP-all.
    /// The model checks every interleaving
    /// (`fast_path_record_survives_a_racing_push_down`).
    pub fn fast_begin(&self, index: usize) -> Option<u64> {
        let word = self.gen.load(Ordering::SeqCst);
        if word & CLAIMED != 0 {
            return None;
        }
        self.note_writable(index);
        Some(word)
    }

    /// After the fast path's cmpxchg on entry `index` (whether it
    /// succeeded or not): records the entry again if the table's generation
    /// word moved since [`TableWp::fast_begin`] returned `word`.
    pub fn fast_end(&self, index: usize, word: u64) {
        if self.gen.load(Ordering::SeqCst) != word {
            self.note_writable(index);
        }
    }

    /// Whether entry `index` is recorded as possibly writable.
    pub fn may_be_writable(&self, index: usize) -> bool {
        self.maybe_writable[index / 64].load(Ordering::SeqCst) & (1 << (index % 64)) != 0
    }

    /// Brings the table to VM generation `gen`: clears W on every entry the
    /// record names (`clear_writable(index)` returns whether that entry was
    /// writable), empties the record, publishes `gen`.  `gen` must be the
    /// VM's generation, read with WP-all excluded.
    pub fn push_down(&self, gen: u64, mut clear_writable: impl FnMut(usize) -> bool) -> PushDown {
        let mut cur = self.gen.load(Ordering::Acquire);
        loop {
            if cur == gen {
                return PushDown::Current;
            }
            if cur & CLAIMED != 0 {
                return PushDown::Busy;
            }
            debug_assert!(cur < gen, "table generation {cur} ahead of the VM's {gen}");
            match self.gen.compare_exchange(
                cur,
                gen | CLAIMED,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        let (mut protected, mut visited) = (0, 0);
        for (w, word) in self.maybe_writable.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::SeqCst);
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                visited += 1;
                if clear_writable(w * 64 + i) {
                    protected += 1;
                }
            }
        }
        // Release: every W cleared above is visible to whoever sees `gen`.
        self.gen.store(gen, Ordering::Release);
        PushDown::Pushed { protected, visited }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The masked write-protect of GET_DIRTY_LOG, CLEAR_DIRTY_LOG and the ring
//! reset: the module's own walk of KVM's page tables (`crate::algo::pt_walk`
//! over [`KvmTables`]) on the x86 TDP MMU and the arm64 stage 2, of the
//! slot's rmaps (`crate::algo::rmap_walk` over [`KvmRmaps`]) on the x86
//! shadow MMU; elsewhere KVM's function.
//!
//! A [`Protector`] lives inside one `mmu_lock` write section
//! ([`MmuLocked`]) and serves the words of one memslot.  At its start it
//! decides whether a walk may serve at all (module parameter `own_walk`;
//! x86: SVM; arm64: 4K pages, no nested virt, no protected KVM), then the
//! shim says which of KVM's structures map the slot now (x86, kernel/0009:
//! the TDP MMU alone, no rmaps of a nested guest, no PML; kernel/0010: the
//! shadow MMU alone, no PML; arm64: the stage 2) and gives the entry bits
//! and the roots of the slot's address space, or its rmaps.  What KVM's
//! function does beside clearing W, and how the walk does the same, is in
//! Documentation/design.rst "The masked write-protect".

use super::bindings;
use super::counters::{self, Counter};
use super::host;
use super::mmu::MmuLocked;
use super::page_tables::{self, KvmTables, TableWalk};
use super::params;
use super::rmaps::{KvmRmaps, RmapWalk};
use crate::algo::pt_walk::{EntryBits, Walker, MAX_LEVEL};
use crate::algo::rmap_walk::{RmapBits, RmapWalker, LEVELS};
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize};
use kernel::page::PAGE_SIZE;

const MAX_ROOTS: usize = page_tables::MAX_ROOTS;
const ENTRIES: u32 = crate::algo::pt_walk::ENTRIES as u32;

/// What serves one memslot under one `mmu_lock` write section.
///
/// A table walk is about 1 KiB (four walkers), an rmap walk far less: a
/// `Walk` lives in its [`Protector`] and is written in place (see
/// [`begin`]), never moved, so the size of the small variant costs
/// nothing, where a box would cost an allocation per section.
#[allow(clippy::large_enum_variant)]
enum Walk {
    /// The x86 TDP MMU or arm64 stage 2: their page tables.
    Tables(TableWalk),
    /// The x86 shadow MMU: the slot's rmaps.
    Rmaps(RmapWalk),
}

/// What the walks and KVM's function served, added to the counters once
/// when dropped: the ring reset protects batch by batch, and five locked
/// adds per batch cost more than a batch's walk on arm64.  Several
/// protectors of one ioctl (one per `mmu_lock` section) share it.
#[derive(Default)]
pub(crate) struct WalkTally {
    words: Cell<u64>,
    steps: Cell<u64>,
    leaf_tables: Cell<u64>,
    cleared: Cell<u64>,
    cleared_plain: Cell<u64>,
    kvm_words: Cell<u64>,
    rmap_words: Cell<u64>,
    rmap_sptes: Cell<u64>,
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

impl Drop for WalkTally {
    fn drop(&mut self) {
        counters::add(Counter::KD_WALK_WORDS, self.words.get());
        counters::add(Counter::KD_WALK_STEPS, self.steps.get());
        counters::add(Counter::KD_WALK_LEAF_TABLES, self.leaf_tables.get());
        counters::add(Counter::KD_WALK_CLEARED, self.cleared.get());
        counters::add(Counter::KD_WALK_CLEARED_PLAIN, self.cleared_plain.get());
        counters::add(Counter::KD_WALK_KVM_WORDS, self.kvm_words.get());
        counters::add(Counter::KD_WALK_RMAP_WORDS, self.rmap_words.get());
        counters::add(Counter::KD_WALK_RMAP_SPTES, self.rmap_sptes.get());
    }
}

/// Serves the masked write-protects of one memslot inside one `mmu_lock`
/// write section, which it holds until dropped; see the module doc.
pub(crate) struct Protector<'a> {
    // Dropped after `Drop::drop` below ended the walk: the walk's tables
    // are valid only while the lock is held.
    locked: MmuLocked<'a>,
    tally: &'a WalkTally,
    /// Whether the shim was asked yet: not before the first dirty word, so
    /// that a clean slot costs nothing.
    begun: bool,
    walk: Option<Walk>,
}

impl<'a> Protector<'a> {
    /// Starts serving `locked`'s memslot; what it does is added to `tally`.
    pub(crate) fn new(locked: MmuLocked<'a>, tally: &'a WalkTally) -> Self {
        Protector {
            locked,
            tally,
            begun: false,
            walk: None,
        }
    }

    /// See [`MmuLocked::needbreak`].
    pub(crate) fn needbreak(&self) -> bool {
        self.locked.needbreak()
    }

    /// Write-protects the 4K pages `first_page + i` of the slot for each
    /// bit `i` set in `mask`; `first_page` is a multiple of 64.
    ///
    /// Inlined into the harvest loops: where KVM's function serves the VM
    /// (the shadow MMU, `own_walk=0`), a dirty word costs a flag test and
    /// the call, as in upstream's loop.  Under TCG every instruction of the
    /// old out-of-line version (a 1 KiB frame, six saved registers) showed:
    /// 0.12-0.22 us more per dirty word than upstream on `npt=0`.
    #[inline(always)]
    pub(crate) fn protect(&mut self, first_page: usize, mask: usize) {
        if self.begun && self.walk.is_none() {
            bump(&self.tally.kvm_words, 1);
            self.locked.write_protect_masked(first_page, mask);
        } else {
            self.protect_slow(first_page, mask);
        }
    }

    /// [`Self::protect`] for the first dirty word and for the module's walk.
    #[inline(never)]
    fn protect_slow(&mut self, first_page: usize, mask: usize) {
        if !self.begun {
            self.begun = true;
            begin(&self.locked, &mut self.walk);
        }
        let huge = match &mut self.walk {
            None => {
                bump(&self.tally.kvm_words, 1);
                self.locked.write_protect_masked(first_page, mask);
                return;
            }
            Some(Walk::Tables(walk)) => walk.protect(first_page, mask),
            Some(Walk::Rmaps(walk)) => {
                if walk.huge_to_kvm && walk.walker.huge_mapped(first_page as u64, mask as u64) {
                    true
                } else {
                    walk.walker.protect(first_page as u64, mask as u64);
                    false
                }
            }
        };
        if huge {
            // KVM splits or write-protects the huge page, and may drop
            // mmu_lock and sleep to allocate while it does: the walk's
            // tables are forgotten and its RCU section left first, then
            // taken up again from the roots (or the rmaps).
            end(&mut self.walk, self.tally);
            bump(&self.tally.kvm_words, 1);
            self.locked.write_protect_masked(first_page, mask);
            begin(&self.locked, &mut self.walk);
        }
    }
}

/// Sets `walk` to the walk of `locked`'s memslot, if one of the module's
/// walks can serve it now (else `None`): one call into the shim, which says
/// which and describes it.  In place: a `Walk` is about 1 KiB (four
/// walkers), and under TCG each move of one (a `memcpy`) cost more than the
/// rest of a never-mapped CLEAR's walk (tools/tcg-profile).
fn begin(locked: &MmuLocked<'_>, walk: &mut Option<Walk>) {
    *walk = None;
    // Whether one of the module's walks may serve at all: the `own_walk`
    // parameter, the host, and 4K pages (the 512-entry tables the walker
    // knows).
    if !params::own_walk() || !host::own_mmu_code() || PAGE_SIZE != 4096 {
        return;
    }
    let (kvm, slot) = locked.raw();
    // Left uninitialized: the shim writes the whole of the one description
    // it returns (include/kvm_dirty_shim.h), and zeroing both cost a tenth
    // of a CLEAR that protects one word (tools/tcg-profile).
    let mut pt = MaybeUninit::<bindings::kd_pt_walk>::uninit();
    let mut rm = MaybeUninit::<bindings::kd_rmap_walk>::uninit();
    // SAFETY: live VM and slot (MmuLocked's borrow of the slots_lock
    // section), mmu_lock held for write as kernel/0009 and kernel/0010
    // assert; for KD_WALK_TABLES the shim entered (x86) an RCU read section
    // that `end` (or `tables`, refusing) leaves.
    let kind =
        unsafe { bindings::kd_wp_walk_describe(kvm, slot, pt.as_mut_ptr(), rm.as_mut_ptr()) };
    match u32::try_from(kind) {
        // SAFETY: the shim wrote all of `pt` (its contract).
        Ok(bindings::KD_WALK_TABLES) => tables(unsafe { pt.assume_init_ref() }, walk),
        Ok(bindings::KD_WALK_RMAPS) => {
            // SAFETY: the shim wrote all of `rm` (its contract).
            if let Some(r) = rmaps(unsafe { rm.assume_init_ref() }) {
                *walk = Some(Walk::Rmaps(r));
            }
        }
        _ => {}
    }
}

/// The rmap walk the shim described, if its layout facts hold.
fn rmaps(info: &bindings::kd_rmap_walk) -> Option<RmapWalk> {
    let mut heads = [NonNull::dangling(); LEVELS];
    for (head, &rmap) in heads.iter_mut().zip(&info.rmap) {
        *head = NonNull::new(rmap.cast::<AtomicUsize>())?;
    }
    let word = core::mem::size_of::<usize>() as u32;
    // The shim's layout facts, checked rather than trusted: a wrong one
    // would read outside the descriptors.
    if info.many != 1
        || info.desc_entries == 0
        || info.desc_more % word != 0
        || info.desc_sptes % word != 0
    {
        return None;
    }
    let rmaps = KvmRmaps {
        heads,
        entries: info.entries,
        desc_more: info.desc_more as usize,
        desc_sptes: info.desc_sptes as usize,
        desc_entries: info.desc_entries as usize,
    };
    let bits = RmapBits {
        present: info.present,
        writable: info.writable,
        many: info.many,
    };
    Some(RmapWalk {
        walker: RmapWalker::new(rmaps, bits, info.base_gfn),
        // The huge-page part of kvm_arch_mmu_enable_log_dirty_pt_masked():
        // with initially-set bitmaps KVM write-protects the huge pages at
        // the mask's edges.
        huge_to_kvm: info.init_set,
    })
}

/// Sets `walk` to the page-table walk the shim described, if its roots have
/// a shape the walker knows; else leaves the RCU section the shim entered.
fn tables(info: &bindings::kd_pt_walk, walk: &mut Option<Walk>) {
    let tables = KvmTables {
        addr: info.addr,
        addr_hi: info.addr_hi,
        addr_hi_shift: info.addr_hi_shift,
        page_offset: info.page_offset,
    };
    // What KVM's own masked write-protect does beside clearing W, which
    // the walk does too.  x86: as clear_dirty_pt_masked(), mark each page
    // whose W it clears dirty; with initially-set bitmaps, leave a huge
    // page to KVM, which splits or write-protects it (the huge-page part of
    // kvm_arch_mmu_enable_log_dirty_pt_masked()).  arm64:
    // kvm_mmu_write_protect_pt_masked() write-protects blocks too, and the
    // whole range from the mask's first to its last page; it marks no page
    // dirty (the fault does).
    let (set_pfn_dirty, huge_to_kvm) = if cfg!(CONFIG_X86) {
        (true, info.init_set)
    } else {
        (false, true)
    };
    // Leaves written with a plain store, not an atomic AND.  arm64: the
    // hardware may set AF (VTCR_EL2.HA), never DBM-style W (KVM sets no DBM
    // in stage 2), and every software writer of a leaf but the walk holds
    // mmu_lock: a leaf with AF set is ours alone, written as
    // stage2_try_set_pte() does under the lock.  x86: none (KVM's A/D
    // masks are private to it).
    let quiet = if cfg!(CONFIG_ARM64) {
        info.access_flag
    } else {
        0
    };
    let bits = EntryBits {
        present: info.present,
        writable: info.writable,
        table_mask: info.table_mask,
        table_bits: info.table_bits,
        quiet,
    };
    let roots = info.nr_roots as usize;
    // Written where it lives, its walkers' array left uninitialized: an
    // array of `None`s is zeroed whole and one built first is moved, either
    // a `memset` or `memcpy` of about 1 KiB per section (tools/tcg-profile).
    let Walk::Tables(table_walk) = walk.insert(Walk::Tables(TableWalk {
        base_gfn: info.base_gfn,
        addr: info.addr,
        set_pfn_dirty,
        huge_to_kvm,
        walkers: [const { MaybeUninit::uninit() }; MAX_ROOTS],
        nr_walkers: 0,
    })) else {
        unreachable!()
    };
    let mut ok = roots <= MAX_ROOTS;
    for i in 0..roots.min(MAX_ROOTS) {
        let level = info.root_levels[i] as usize;
        let entries = info.root_entries[i];
        // The shim checked these; a walker with a wrong shape would walk
        // out of its tables, so check again rather than trust, and leave
        // every word to KVM rather than skip a root.
        let shape_ok =
            (2..=MAX_LEVEL).contains(&level) && entries.is_power_of_two() && entries >= ENTRIES;
        match NonNull::new(info.roots[i].cast::<AtomicU64>()) {
            Some(root) if shape_ok => {
                table_walk.walkers[i].write(Walker::new(
                    tables,
                    bits,
                    root,
                    level,
                    entries as usize,
                ));
                table_walk.nr_walkers = i + 1;
            }
            _ => ok = false,
        }
    }
    if !ok {
        *walk = None;
        pt_walk_end();
    }
}

/// Leaves the RCU read section kd_wp_walk_describe() entered for a table
/// walk.  On x86 only: arm64's stage-2 walk under `mmu_lock` held for write
/// takes none.
#[inline(always)]
fn pt_walk_end() {
    #[cfg(CONFIG_X86)]
    // SAFETY: the caller is done with the walk kd_wp_walk_describe()
    // described, and leaves its RCU section once.
    unsafe {
        bindings::kd_pt_walk_end()
    };
}

/// Tallies what `walk` did, leaves its RCU section (page tables) and sets
/// it to `None`; by reference, as `begin`.
fn end(walk: &mut Option<Walk>, tally: &WalkTally) {
    match walk {
        None => return,
        Some(Walk::Rmaps(w)) => {
            let stats = &w.walker.stats;
            bump(&tally.words, stats.words);
            bump(&tally.rmap_words, stats.words);
            bump(&tally.rmap_sptes, stats.sptes);
            bump(&tally.cleared, stats.cleared);
        }
        Some(Walk::Tables(w)) => {
            for w in w.walkers() {
                bump(&tally.words, w.stats.words);
                bump(&tally.steps, w.stats.steps);
                bump(&tally.leaf_tables, w.stats.leaf_tables);
                bump(&tally.cleared, w.stats.cleared);
                bump(&tally.cleared_plain, w.stats.cleared_plain);
            }
            pt_walk_end();
        }
    }
    *walk = None;
}

impl Drop for Protector<'_> {
    fn drop(&mut self) {
        end(&mut self.walk, self.tally);
    }
}

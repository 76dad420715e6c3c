//! A model of write-protect-all on arm64 stage 2 (rust/algo/wp_all_stage2.rs):
//! pending table descriptors pushed down by faults, with the hardware's
//! TLBs, and the migration protocol on top (common/migrate.rs).
//!
//! The tree holds real stage-2 descriptors (u64, the bits of
//! rust/algo/wp_all_stage2.rs; a table's "address" is its index << 12): a start
//! level (level 1) of R entries, level-2 tables of M entries, each a 2M-like
//! block or a level-3 table of L pages.  Two vCPUs access pages like the
//! hardware: through their own TLB if it holds the page (a write needs a
//! writable entry), else by walking the tree, which faults on an invalid
//! descriptor (translation fault) or on a read-only leaf for a write
//! (permission fault); a successful walk fills the TLB.  The faults run a
//! model of KVM 6.12's user_mem_abort() with the hook: the map walker calls
//! push_down() on a pending descriptor; it installs tables, splits a block
//! that a logged write needs a page of (break-before-make: TLB invalidated),
//! maps read faults read-only while logging, and leaves an existing leaf
//! whose permissions alone differ to the permission fault that follows
//! (relax-perms: W, the faulting vCPU's TLB entry dropped, the page logged).
//! Other events: MMU-notifier unmaps (exclusive walkers descend into pending
//! subtrees; TLBs invalidated), eager splits of blocks (also below pending
//! descriptors; the new pages keep the block's permission, as KVM's split
//! walker does), and the VMM's rounds.
//!
//! Each rule is dropped once to show the model catches it: no TLB
//! invalidation at the WP-all, a push-down that does not make its child's
//! table descriptors pending, and the harvest after the WP-all.

mod common;
use common::migrate::{self, Guest, Order};
use common::Rng;

use dirty_algos::wp_all_stage2::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const R: usize = 2;
const M: usize = 4;
const L: usize = 4;
const PAGES: usize = R * M * L;
const VCPUS: usize = 2;
const ROOT: usize = 0;

#[derive(Clone, Copy)]
struct Rules {
    order: Order,
    /// The WP-all invalidates the TLBs (the "break" for everything below
    /// the descriptors it made pending).
    flush_at_wp_all: bool,
    /// The push-down makes the child's table descriptors pending (and not
    /// only its leaves read-only).
    pend_child_tables: bool,
}

const RIGHT: Rules = Rules {
    order: Order::HarvestFirst,
    flush_at_wp_all: true,
    pend_child_tables: true,
};

#[derive(Default, Debug)]
struct Stats {
    faults: u64,
    read_faults_pushing: u64,
    pushed: u64,
    leaves_protected: u64,
    tables_pended: u64,
    tlb_writes: u64,
    unlogged_writes: u64,
}

struct Vm {
    tables: Vec<Vec<AtomicU64>>,
    /// Per vCPU: page -> writable, the translations its TLB holds.
    tlb: [BTreeMap<usize, bool>; VCPUS],
    mem: [u64; PAGES],
    dirty: BTreeSet<usize>,
    logging: bool,
    rules: Rules,
    stats: Stats,
}

fn table_pte(t: usize) -> u64 {
    ((t as u64) << 12) | TYPE_TABLE | VALID
}

fn leaf_pte(level: i32, w: bool) -> u64 {
    let ty = if level == LAST_LEVEL { TYPE_TABLE } else { 0 };
    VALID | ty | if w { S2AP_W } else { 0 }
}

fn table_of(pte: u64) -> usize {
    ((pte & !PENDING & !LOCKED) >> 12) as usize
}

/// What the hardware walk found.
enum Walk {
    /// A leaf at `level`, writable or not.
    Leaf { w: bool },
    /// An invalid descriptor (empty or pending): translation fault.
    Invalid,
}

impl Vm {
    fn new(rules: Rules) -> Self {
        let mut vm = Vm {
            tables: Vec::new(),
            tlb: Default::default(),
            mem: [0; PAGES],
            dirty: BTreeSet::new(),
            logging: false,
            rules,
            stats: Stats::default(),
        };
        vm.new_table(R);
        vm
    }

    fn new_table(&mut self, n: usize) -> usize {
        self.tables
            .push((0..n).map(|_| AtomicU64::new(0)).collect());
        self.tables.len() - 1
    }

    fn get(&self, t: usize, i: usize) -> u64 {
        self.tables[t][i].load(Relaxed)
    }

    fn set(&self, t: usize, i: usize, pte: u64) {
        self.tables[t][i].store(pte, Relaxed)
    }

    /// The (table, index) path of page `p`: level 1, 2, 3.
    fn idx(p: usize) -> [usize; 3] {
        [p / (M * L), p / L % M, p % L]
    }

    /// The pages below entry `i` of a level-`level` table covering `base`.
    fn pages_of(level: i32, first: usize) -> std::ops::Range<usize> {
        let n = match level {
            1 => M * L,
            2 => L,
            _ => 1,
        };
        first..first + n
    }

    /// Invalidates `pages` in every vCPU's TLB (a broadcast TLBI).
    fn tlbi(&mut self, pages: std::ops::Range<usize>) {
        for tlb in &mut self.tlb {
            for p in pages.clone() {
                tlb.remove(&p);
            }
        }
    }

    /// The hardware's table walk for page `p`.
    fn hw_walk(&self, p: usize) -> Walk {
        let mut t = ROOT;
        for (k, &i) in Self::idx(p).iter().enumerate() {
            let level = k as i32 + 1;
            let pte = self.get(t, i);
            if pte & VALID == 0 {
                return Walk::Invalid;
            }
            if is_table(pte, level) {
                t = table_of(pte);
                continue;
            }
            return Walk::Leaf {
                w: pte & S2AP_W != 0,
            };
        }
        unreachable!("a level-3 descriptor is a leaf")
    }

    /// KVM_WRITE_PROTECT_ALL_MEM, under mmu_lock held for write.
    fn write_protect_all(&mut self) {
        let done = write_protect_top(&self.tables[ROOT], 1);
        self.stats.tables_pended += u64::from(done.tables);
        if self.rules.flush_at_wp_all {
            self.tlbi(0..PAGES);
        }
    }

    /// The hook in the map walker: a pending descriptor at entry `i` of
    /// table `t` (at `level`).
    fn push(&mut self, t: usize, i: usize, level: i32) {
        let tables = &self.tables;
        let r = if self.rules.pend_child_tables {
            push_down(&tables[t][i], level, |pte| &tables[table_of(pte)])
        } else {
            // Wrong: only the child's leaves lose W; its table descriptors
            // stay valid, and what lies below them stays writable.
            let parent = &tables[t][i];
            let old = parent.load(Relaxed);
            for e in tables[table_of(old)].iter() {
                let pte = e.load(Relaxed);
                if is_writable_leaf(pte, level + 1) {
                    e.store(pte & !S2AP_W, Relaxed);
                }
            }
            parent.store((old & !PENDING) | VALID, Relaxed);
            PushDown::Pushed(Protected::default())
        };
        match r {
            PushDown::Pushed(done) => {
                self.stats.pushed += 1;
                self.stats.leaves_protected += u64::from(done.leaves);
                self.stats.tables_pended += u64::from(done.tables);
            }
            r => unreachable!("one fault at a time in this model: {r:?}"),
        }
    }

    /// KVM's stage-2 map walk for page `p` (kvm_pgtable_stage2_map() with
    /// the push-down hook): a leaf at level 3, or a block at level 2 if
    /// `block`, writable if `w`.  Returns whether it installed the leaf
    /// (KVM then marks the page dirty if `w`), or false where KVM's walker
    /// returns -EAGAIN (a leaf that differs in permissions only: the guest
    /// retries, and a write then takes a permission fault).
    fn map(&mut self, p: usize, block: bool, w: bool) -> bool {
        let target = if block { 2 } else { 3 };
        let mut t = ROOT;
        let mut first = 0;
        for (k, &i) in Self::idx(p).iter().enumerate() {
            let level = k as i32 + 1;
            let range = Self::pages_of(level, first + i * Self::pages_of(level, 0).len());
            let mut pte = self.get(t, i);
            if is_pending(pte) {
                self.push(t, i, level);
                pte = self.get(t, i);
            }
            if level == target {
                if pte & VALID != 0 && !is_table(pte, level) {
                    return false; // -EAGAIN: permissions alone differ
                }
                if is_table(pte, level) {
                    // A block over a table: KVM does not do it while
                    // logging (force_pte); map a page instead.
                    assert!(block);
                    return self.map(p, false, w);
                }
                self.set(t, i, leaf_pte(level, w));
                return true;
            }
            if pte & VALID == 0 {
                // Empty: a zeroed table, linked valid.
                let child = self.new_table(if level == 1 { M } else { L });
                self.set(t, i, table_pte(child));
            } else if !is_table(pte, level) {
                // A block where a page is needed: the fault path splits it
                // (stage2_map_walk_leaf): an empty table replaces it, break
                // before make, the rest refaults lazily.
                self.set(t, i, 0);
                self.tlbi(range.clone());
                let child = self.new_table(L);
                self.set(t, i, table_pte(child));
            }
            t = table_of(self.get(t, i));
            first = range.start;
        }
        unreachable!()
    }

    /// A permission fault (write to a read-only leaf the walk reached):
    /// relax-perms on a page, or a page split out of a block while logging.
    fn permission_fault(&mut self, v: usize, p: usize) {
        let [a, b, c] = Self::idx(p);
        let l1 = self.get(ROOT, a);
        let (t, i, level) = if is_table(l1, 1) {
            let l2t = table_of(l1);
            let l2 = self.get(l2t, b);
            if is_table(l2, 2) {
                (table_of(l2), c, 3)
            } else {
                (l2t, b, 2)
            }
        } else {
            (ROOT, a, 1)
        };
        if level == LAST_LEVEL || !self.logging {
            // kvm_pgtable_stage2_relax_perms(): W, a local TLBI.
            let pte = self.get(t, i);
            self.set(t, i, pte | S2AP_W);
            self.tlb[v].remove(&p);
        } else {
            // force_pte: map a writable page, splitting the block.
            assert!(self.map(p, false, true));
        }
        self.dirty.insert(p);
    }

    /// A translation fault on page `p`: KVM's user_mem_abort() with the
    /// hook.  While logging, pages only, read-only for reads; before, a
    /// block or a page, writable even for a read (the host page is).
    fn translation_fault(&mut self, p: usize, write: bool, rng: &mut Rng) {
        let block = !self.logging && rng.next().is_multiple_of(2);
        let w = write || (!self.logging && rng.next().is_multiple_of(2));
        if self.map(p, block, w) && w {
            self.dirty.insert(p);
        }
    }

    fn access(&mut self, v: usize, p: usize, write: bool, rng: &mut Rng) {
        for tries in 0.. {
            assert!(tries < 8, "page {p} still faulting after 8 faults");
            if let Some(&w) = self.tlb[v].get(&p) {
                if !write || w {
                    if write {
                        self.stats.tlb_writes += 1;
                        if !self.dirty.contains(&p) {
                            self.stats.unlogged_writes += 1;
                        }
                        self.mem[p] += 1;
                    }
                    return;
                }
            }
            match self.hw_walk(p) {
                Walk::Leaf { w } if !write || w => {
                    self.tlb[v].insert(p, w);
                }
                Walk::Leaf { .. } => {
                    self.stats.faults += 1;
                    self.permission_fault(v, p);
                }
                Walk::Invalid => {
                    self.stats.faults += 1;
                    let pushed = self.stats.pushed;
                    self.translation_fault(p, write, rng);
                    if !write && self.stats.pushed > pushed {
                        self.stats.read_faults_pushing += 1;
                    }
                }
            }
        }
    }

    /// An MMU notifier or memslot change (stage2_unmap_walker, exclusive):
    /// drops one descriptor, whatever it is (pending ones too: the patch
    /// makes exclusive walkers descend into them), then the TLBI.
    fn zap(&mut self, rng: &mut Rng) {
        let p = rng.next() as usize % PAGES;
        let [a, b, c] = Self::idx(p);
        let level = rng.next() % 3 + 1;
        let l1 = self.get(ROOT, a);
        if level == 1 || l1 & (VALID | PENDING) == 0 || !(is_table(l1, 1) || is_pending(l1)) {
            self.set(ROOT, a, 0);
            self.tlbi(Self::pages_of(1, a * M * L));
            return;
        }
        let l2t = table_of(l1);
        let l2 = self.get(l2t, b);
        if level == 2 || !(is_table(l2, 2) || is_pending(l2)) {
            self.set(l2t, b, 0);
        } else {
            self.set(table_of(l2), c, 0);
        }
        self.tlbi(Self::pages_of(2, (a * M + b) * L));
    }

    /// Eager split of a block (stage2_split_walker, exclusive, also below
    /// pending descriptors): a table of pages with the block's permission,
    /// break-before-make.
    fn eager_split(&mut self, rng: &mut Rng) {
        let p = rng.next() as usize % PAGES;
        let [a, b, _] = Self::idx(p);
        let l1 = self.get(ROOT, a);
        if !(is_table(l1, 1) || is_pending(l1)) {
            return;
        }
        let l2t = table_of(l1);
        let l2 = self.get(l2t, b);
        if l2 & VALID == 0 || is_table(l2, 2) {
            return;
        }
        let child = self.new_table(L);
        for j in 0..L {
            self.set(child, j, leaf_pte(3, l2 & S2AP_W != 0));
        }
        self.set(l2t, b, 0);
        self.tlbi(Self::pages_of(2, (a * M + b) * L));
        self.set(l2t, b, table_pte(child));
    }
}

impl Guest for Vm {
    fn run(&mut self, rng: &mut Rng) {
        for _ in 0..rng.next() % 6 {
            let p = rng.next() as usize % PAGES;
            let v = rng.next() as usize % VCPUS;
            match rng.next() % 10 {
                0..=5 => self.access(v, p, true, rng),
                6 | 7 => self.access(v, p, false, rng),
                8 => self.zap(rng),
                _ => self.eager_split(rng),
            }
        }
    }

    fn start_logging(&mut self) {
        self.dirty.clear();
        self.logging = true;
    }

    fn write_protect_all(&mut self) {
        Vm::write_protect_all(self);
    }

    fn harvest(&mut self) -> BTreeSet<usize> {
        std::mem::take(&mut self.dirty)
    }

    fn memory(&self) -> &[u64] {
        &self.mem
    }
}

fn migrate(seed: u64, rules: Rules) -> (Vec<usize>, Stats) {
    let mut vm = Vm::new(rules);
    let stale = migrate::migrate(&mut vm, &mut Rng(seed | 1), 6, rules.order);
    (stale, vm.stats)
}

/// A rule dropped: some of `n` migrations must lose a write.
fn assert_loses(rules: Rules, n: u64, what: &str) {
    let lost = (0..n).filter(|&s| !migrate(s, rules).0.is_empty()).count();
    eprintln!("{what}: {lost} of {n} migrations lost a write");
    assert!(lost > 0, "{what}: no loss caught");
}

#[test]
fn no_write_lost_with_pending_descriptors() {
    let mut total = Stats::default();
    for seed in 0..20_000 {
        let (stale, s) = migrate(seed, RIGHT);
        assert!(stale.is_empty(), "seed {seed}: stale pages {stale:?}");
        total.faults += s.faults;
        total.read_faults_pushing += s.read_faults_pushing;
        total.pushed += s.pushed;
        total.leaves_protected += s.leaves_protected;
        total.tables_pended += s.tables_pended;
        total.tlb_writes += s.tlb_writes;
        total.unlogged_writes += s.unlogged_writes;
    }
    eprintln!("pending descriptors, 20,000 migrations: {total:?}");
    // The model did exercise the mechanism: push-downs at every level,
    // read faults that pushed, writes through TLBs.
    assert!(
        total.pushed > 10_000 && total.leaves_protected > 10_000,
        "{total:?}"
    );
    assert!(total.tables_pended > total.pushed / 2, "{total:?}");
    assert!(total.read_faults_pushing > 1_000, "{total:?}");
    assert!(
        total.tlb_writes > 10_000 && total.unlogged_writes > 0,
        "{total:?}"
    );
}

#[test]
fn wp_all_without_tlb_invalidation_loses_writes() {
    let rules = Rules {
        flush_at_wp_all: false,
        ..RIGHT
    };
    assert_loses(rules, 20_000, "no TLB invalidation at the WP-all");
}

#[test]
fn shallow_push_down_loses_writes() {
    let rules = Rules {
        pend_child_tables: false,
        ..RIGHT
    };
    assert_loses(rules, 20_000, "push-down leaving child tables valid");
}

#[test]
fn stage2_wp_all_before_harvest_loses_writes() {
    let rules = Rules {
        order: Order::WpAllFirst,
        ..RIGHT
    };
    assert_loses(rules, 2_000, "WP-all -> harvest -> copy");
}

#[test]
fn push_down_claims_once_and_restores_the_descriptor() {
    use std::sync::{Arc, Barrier};
    for _ in 0..200 {
        let child: Arc<Vec<AtomicU64>> = Arc::new(
            (0..512u64)
                .map(|i| {
                    AtomicU64::new(match i % 4 {
                        0 => table_pte(7) ^ (i << 12),
                        1 => leaf_pte(2, true),
                        2 => leaf_pte(2, false),
                        _ => 0,
                    })
                })
                .collect(),
        );
        let pending = (table_pte(3) & !VALID) | PENDING;
        let parent = Arc::new(AtomicU64::new(pending));
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (parent, child, barrier) = (parent.clone(), child.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    push_down(&parent, 1, |_| &child[..])
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let pushed: Vec<_> = results
            .iter()
            .filter_map(|r| match r {
                PushDown::Pushed(p) => Some(*p),
                _ => None,
            })
            .collect();
        assert_eq!(
            pushed,
            [Protected {
                tables: 128,
                leaves: 128
            }],
            "{results:?}"
        );
        assert_eq!(parent.load(Relaxed), table_pte(3));
        for (i, e) in child.iter().enumerate() {
            let pte = e.load(Relaxed);
            match i % 4 {
                0 => assert!(is_pending(pte) && pte & LOCKED == 0 && table_of(pte) != 0),
                1 | 2 => assert_eq!(pte, leaf_pte(2, false)),
                _ => assert_eq!(pte, 0),
            }
        }
    }
}

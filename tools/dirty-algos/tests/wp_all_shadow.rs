//! A model of write-protect-all on x86's shadow MMU (rust/algo/wp_all.rs with
//! the hooks of kernel/0007-*.patch), where the tree of the TDP MMU becomes
//! a graph that vCPUs change without mmu_lock:
//!
//! - Each guest address space (a CR3) has its own root, and tables below
//!   roots are shared: a shadow page is found by what it shadows, so one
//!   middle table hangs under every root, and one leaf table under several
//!   middle entries (two guest virtual ranges mapping one guest page table),
//!   with its pages aliased.  A table linked under a new parent keeps its
//!   entries and its state, stale or not.
//! - A vCPU switches roots by itself (a guest CR3 load, KVM's cached roots)
//!   without mmu_lock, so KVM_WRITE_PROTECT_ALL_MEM cannot find the roots in
//!   use.  It bumps the generation and makes every vCPU load its root again;
//!   a vCPU brings its root to the generation before it runs on it
//!   (`kvm_mmu_load_pgd`, the hook ->wp_load_root).
//! - Linking a table records the entries of the child that have W (a table
//!   split from a huge page is filled with W before it is linked) and links
//!   it without W; the walk's step then pushes the child down and, for a
//!   write, gives the link W, as on the TDP MMU.
//!
//! The guest writes through the graph like hardware; the VMM migrates with
//! harvest -> WP-all -> copy; the destination must equal the guest's memory.
//! Each rule of the design, dropped, must be caught losing writes.

mod common;
use common::migrate::{self, Guest, Order};
use common::tree::{Entry, Kind, Table, NONE};
use common::Rng;

use dirty_algos::wp_all::*;
use std::collections::BTreeSet;

/// Root entries, middle entries, leaf entries per table.
const R: usize = 2;
const M: usize = 3;
const L: usize = 3;
/// Guest address spaces (CR3 values), vCPUs, cached roots per vCPU.
const CR3S: usize = 3;
const VCPUS: usize = 2;
const PREV: usize = 1;
/// Leaf tables are shared: (r, m) uses leaf table (r * M + m) % LEAF_TABLES,
/// so some pairs alias (one guest page table mapped twice).
const LEAF_TABLES: usize = R * M - 2;
const PAGES: usize = LEAF_TABLES * L;

#[derive(Clone, Copy, Default)]
struct Rules {
    /// Wrong: a vCPU runs on its root without bringing it to the generation.
    no_root_hook: bool,
    /// Wrong: a link keeps W, as upstream's make_nonleaf_spte makes it, and
    /// the walk goes on into the child without the step's push-down.
    upstream_link: bool,
    /// Wrong: a link does not record the child's writable entries.
    link_no_record: bool,
}

#[derive(Default, Debug)]
struct Stats {
    faults: u64,
    pushed: u64,
    root_pushes: u64,
    shared_links: u64,
    unlogged_writes: u64,
}

struct Vcpu {
    cr3: usize,
    root: usize,
    prev: Vec<(usize, usize)>,
    /// The root must be (re)loaded before the vCPU runs: a root switch, or
    /// the request of a WP-all.
    load: bool,
}

struct Vm {
    tables: Vec<Table>,
    /// Shadow pages by what they shadow: roots by CR3, middle tables by root
    /// index, leaf tables by leaf-table number.
    roots: Vec<Option<usize>>,
    mids: Vec<Option<usize>>,
    leaves: Vec<Option<usize>>,
    vcpus: Vec<Vcpu>,
    vm: VmWp,
    mem: [u64; PAGES],
    dirty: BTreeSet<usize>,
    logging: bool,
    rules: Rules,
    stats: Stats,
}

fn leaf_table(r: usize, m: usize) -> usize {
    (r * M + m) % LEAF_TABLES
}

/// Guest-physical page of virtual page (r, m, l).
fn phys(r: usize, m: usize, l: usize) -> usize {
    leaf_table(r, m) * L + l
}

impl Vm {
    fn new(rules: Rules) -> Self {
        let mut vm = Vm {
            tables: Vec::new(),
            roots: vec![None; CR3S],
            mids: vec![None; R],
            leaves: vec![None; LEAF_TABLES],
            vcpus: Vec::new(),
            vm: VmWp::new(),
            mem: [0; PAGES],
            dirty: BTreeSet::new(),
            logging: false,
            rules,
            stats: Stats::default(),
        };
        for v in 0..VCPUS {
            let root = vm.get_root(v % CR3S);
            vm.vcpus.push(Vcpu {
                cr3: v % CR3S,
                root,
                prev: Vec::new(),
                load: true,
            });
        }
        vm
    }

    fn new_table(&mut self, n: usize) -> usize {
        // Zeroed at allocation, like struct kvm_dirty_table in a new shadow
        // page: generation 0, nothing recorded.
        self.tables.push(Table {
            entries: vec![NONE; n],
            wp: TableWp::new_empty(0),
        });
        self.tables.len() - 1
    }

    /// mmu_alloc_root: the root of `cr3`, an existing shadow page if there
    /// is one (whatever its generation).
    fn get_root(&mut self, cr3: usize) -> usize {
        match self.roots[cr3] {
            Some(t) => t,
            None => {
                let t = self.new_table(R);
                self.roots[cr3] = Some(t);
                t
            }
        }
    }

    /// KVM_WRITE_PROTECT_ALL_MEM: a new generation, every vCPU asked to load
    /// its root again (and its TLB flushed, which the model has no need of).
    fn write_protect_all(&mut self) {
        self.vm.write_protect_all(|_| {});
        for v in &mut self.vcpus {
            v.load = true;
        }
    }

    /// Clears W on the entries `t`'s record names, makes it current.
    fn push(&mut self, t: usize) -> bool {
        let gen = self.vm.generation();
        let table = &mut self.tables[t];
        let entries = &mut table.entries;
        match table
            .wp
            .push_down(gen, |j| std::mem::replace(&mut entries[j].w, false))
        {
            PushDown::Pushed { .. } => true,
            PushDown::Current => false,
            PushDown::Busy => unreachable!("mmu_lock is held for write"),
        }
    }

    /// What a vCPU does before it enters the guest: load its root, which
    /// ->wp_load_root brings to the VM's generation first.
    fn enter(&mut self, v: usize) {
        if !self.vcpus[v].load {
            return;
        }
        self.vcpus[v].load = false;
        if !self.rules.no_root_hook && self.push(self.vcpus[v].root) {
            self.stats.root_pushes += 1;
        }
    }

    /// A guest CR3 load: a cached root if there is one (no mmu_lock), else
    /// a root found or made by mmu_alloc_root; the old one is cached.
    fn switch_cr3(&mut self, v: usize, cr3: usize) {
        if self.vcpus[v].cr3 == cr3 {
            return;
        }
        let root = match self.vcpus[v].prev.iter().position(|&(c, _)| c == cr3) {
            Some(i) => self.vcpus[v].prev.remove(i).1,
            None => self.get_root(cr3),
        };
        let vcpu = &mut self.vcpus[v];
        vcpu.prev.insert(0, (vcpu.cr3, vcpu.root));
        vcpu.prev.truncate(PREV);
        vcpu.cr3 = cr3;
        vcpu.root = root;
        vcpu.load = true;
    }

    fn give_w(&mut self, t: usize, i: usize) {
        self.tables[t].wp.note_writable(i);
        self.tables[t].entries[i].w = true;
    }

    /// __link_shadow_page with ->wp_link: record the child's entries that
    /// have W, link without W.
    fn link(&mut self, t: usize, i: usize, child: usize) {
        if !self.rules.link_no_record {
            for j in 0..self.tables[child].entries.len() {
                if self.tables[child].entries[j].w {
                    self.tables[child].wp.note_writable(j);
                }
            }
        }
        self.tables[t].entries[i] = Entry {
            kind: Kind::Table(child),
            w: false,
        };
        if self.rules.upstream_link {
            self.give_w(t, i);
        }
    }

    /// ->wp_step, at each non-leaf entry the walk passes: the child brought
    /// to the generation, then, for a write, the entry given W.
    fn step(&mut self, t: usize, i: usize, write: bool) -> usize {
        let Kind::Table(child) = self.tables[t].entries[i].kind else {
            unreachable!()
        };
        if self.push(child) {
            self.stats.pushed += 1;
        }
        if write && !self.tables[t].entries[i].w {
            self.give_w(t, i);
        }
        child
    }

    /// The child of entry `i` of `t`: the one linked, or the shadow page of
    /// `key` in `pool`, linked now (shared if it exists).
    fn child(
        &mut self,
        t: usize,
        i: usize,
        n: usize,
        key: usize,
        leaf: bool,
        write: bool,
    ) -> usize {
        let want = if leaf {
            self.leaves[key]
        } else {
            self.mids[key]
        };
        match self.tables[t].entries[i].kind {
            Kind::Table(c) if Some(c) == want => {}
            _ => {
                let c = match want {
                    Some(c) => {
                        self.stats.shared_links += 1;
                        c
                    }
                    None => {
                        let c = self.new_table(n);
                        if leaf {
                            self.leaves[key] = Some(c);
                        } else {
                            self.mids[key] = Some(c);
                        }
                        c
                    }
                };
                self.link(t, i, c);
                if self.rules.upstream_link {
                    return c;
                }
            }
        }
        self.step(t, i, write)
    }

    /// FNAME(fetch) with the hooks, for virtual page (r, m, l) on vCPU `v`.
    fn fault(&mut self, v: usize, (r, m, l): (usize, usize, usize), write: bool, huge: bool) {
        self.stats.faults += 1;
        let root = self.vcpus[v].root;
        let mid = self.child(root, r, M, r, false, write);
        let e = self.tables[mid].entries[m];
        let t = match e.kind {
            Kind::None if huge && (!write || !self.logging) => {
                self.tables[mid].entries[m].kind = Kind::Leaf;
                if write {
                    self.give_w(mid, m);
                }
                return;
            }
            Kind::Leaf if !write => return,
            Kind::Leaf if !self.logging => {
                self.give_w(mid, m);
                return;
            }
            // A write to a huge page under logging: a leaf table replaces
            // it (drop_large_spte, then the link).
            Kind::Leaf => {
                self.tables[mid].entries[m] = NONE;
                self.child(mid, m, L, leaf_table(r, m), true, write)
            }
            _ => self.child(mid, m, L, leaf_table(r, m), true, write),
        };
        self.tables[t].entries[l].kind = Kind::Leaf;
        if write && !self.tables[t].entries[l].w {
            // mmu_set_spte: ->wp_leaf records it, make_spte logs it.
            self.give_w(t, l);
            self.dirty.insert(phys(r, m, l));
        }
    }

    /// Whether the hardware lets vCPU `v` write (r, m, l) without a fault.
    fn writable(&self, v: usize, (r, m, l): (usize, usize, usize)) -> bool {
        let e2 = self.tables[self.vcpus[v].root].entries[r];
        let Kind::Table(mid) = e2.kind else {
            return false;
        };
        let e1 = self.tables[mid].entries[m];
        match e1.kind {
            Kind::None => false,
            Kind::Leaf => e2.w && e1.w,
            Kind::Table(t) => {
                let e0 = self.tables[t].entries[l];
                e2.w && e1.w && e0.kind == Kind::Leaf && e0.w
            }
        }
    }

    fn write(&mut self, v: usize, a: (usize, usize, usize), huge: bool) {
        self.enter(v);
        let p = phys(a.0, a.1, a.2);
        if self.writable(v, a) {
            if !self.dirty.contains(&p) {
                self.stats.unlogged_writes += 1;
            }
        } else {
            let mut faults = 0;
            while !self.writable(v, a) {
                faults += 1;
                assert!(faults <= 2, "{a:?} still not writable after 2 faults");
                self.fault(v, a, true, huge);
            }
        }
        self.mem[p] += 1;
    }

    /// A zap: one entry dropped (a memslot change, an MMU notifier, a
    /// guest page-table write), or one shadow page zapped everywhere.
    fn zap(&mut self, rng: &mut Rng) {
        let t = rng.next() as usize % self.tables.len();
        if rng.next().is_multiple_of(4) {
            let is_root = self.roots.contains(&Some(t));
            if is_root {
                return;
            }
            for key in self.mids.iter_mut().chain(self.leaves.iter_mut()) {
                if *key == Some(t) {
                    *key = None;
                }
            }
            for table in &mut self.tables {
                for e in &mut table.entries {
                    if e.kind == Kind::Table(t) {
                        *e = NONE;
                    }
                }
            }
        } else {
            let n = self.tables[t].entries.len();
            self.tables[t].entries[rng.next() as usize % n] = NONE;
        }
    }

    /// Eager split of a huge leaf (shadow_mmu_split_huge_page): a new leaf
    /// table filled with the huge page's W, then linked.
    fn eager_split(&mut self, rng: &mut Rng) {
        let (r, m) = (rng.next() as usize % R, rng.next() as usize % M);
        let Some(mid) = self.mids[r] else { return };
        let e = self.tables[mid].entries[m];
        if e.kind != Kind::Leaf {
            return;
        }
        let key = leaf_table(r, m);
        if self.leaves[key].is_some() {
            return;
        }
        let c = self.new_table(L);
        for j in 0..L {
            self.tables[c].entries[j] = Entry {
                kind: Kind::Leaf,
                w: e.w,
            };
        }
        self.leaves[key] = Some(c);
        self.link(mid, m, c);
    }
}

fn addr(rng: &mut Rng) -> (usize, usize, usize) {
    (
        rng.next() as usize % R,
        rng.next() as usize % M,
        rng.next() as usize % L,
    )
}

impl Guest for Vm {
    fn run(&mut self, rng: &mut Rng) {
        for _ in 0..rng.next() % 8 {
            let v = rng.next() as usize % VCPUS;
            match rng.next() % 12 {
                0..=5 => {
                    let a = addr(rng);
                    let huge = rng.next().is_multiple_of(3);
                    self.write(v, a, huge)
                }
                6 => {
                    self.enter(v);
                    let a = addr(rng);
                    let huge = rng.next().is_multiple_of(2);
                    self.fault(v, a, false, huge)
                }
                7 | 8 => self.switch_cr3(v, rng.next() as usize % CR3S),
                9 | 10 => self.zap(rng),
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

/// One migration (common/migrate.rs), harvest -> WP-all -> copy.
fn migrate(seed: u64, rules: Rules, rounds: usize) -> (Vec<usize>, Stats) {
    let mut vm = Vm::new(rules);
    let stale = migrate::migrate(&mut vm, &mut Rng(seed | 1), rounds, Order::HarvestFirst);
    (stale, vm.stats)
}

const SEEDS: u64 = 20_000;

#[test]
fn shadow_no_write_lost() {
    let mut total = Stats::default();
    for seed in 0..SEEDS {
        let (stale, s) = migrate(seed, Rules::default(), 6);
        assert!(stale.is_empty(), "seed {seed}: stale pages {stale:?}");
        total.faults += s.faults;
        total.pushed += s.pushed;
        total.root_pushes += s.root_pushes;
        total.shared_links += s.shared_links;
        total.unlogged_writes += s.unlogged_writes;
    }
    // The model did exercise what is new on the shadow MMU.
    assert!(total.root_pushes > 10_000, "{total:?}");
    assert!(total.shared_links > 10_000, "{total:?}");
    assert!(total.pushed > 10_000, "{total:?}");
    assert!(total.unlogged_writes > 0, "{total:?}");
}

fn losses(rules: Rules) -> usize {
    let n = (0..SEEDS)
        .filter(|&s| !migrate(s, rules, 6).0.is_empty())
        .count();
    eprintln!("{n} of {SEEDS} migrations lost a write");
    n
}

#[test]
fn shadow_root_used_without_its_push_loses_writes() {
    let rules = Rules {
        no_root_hook: true,
        ..Rules::default()
    };
    assert!(losses(rules) > 0, "a stale root must be caught");
}

#[test]
fn shadow_link_as_upstream_loses_writes() {
    let rules = Rules {
        upstream_link: true,
        ..Rules::default()
    };
    assert!(
        losses(rules) > 0,
        "a shared table linked with W must be caught"
    );
}

#[test]
fn shadow_split_linked_without_record_loses_writes() {
    let rules = Rules {
        link_no_record: true,
        ..Rules::default()
    };
    assert!(losses(rules) > 0, "a split table's W must be caught");
}

//! A model of write-protect-all (rust/algo/wp_all.rs) on a small x86-like tree,
//! and of the migration protocol on top of it.
//!
//! The tree: a root table of R entries, each pointing to a middle table of
//! M entries, each either a huge leaf (a run of L pages) or a leaf table of
//! L entries.  Every entry has a W bit that applies to all below it, as in
//! x86 paging.  The guest writes through it like hardware (a write faults
//! unless every entry on its path is present and has W); faults run the
//! push-down of rust/algo/wp_all.rs, then make the leaf writable and log it, like
//! KVM's fault path.  Other events: reads (faulting a path in without W, or
//! with W and logged, as KVM may), zaps (a memslot change, an MMU notifier),
//! splits of huge leaves outside faults (eager split), and the VMM's rounds.
//!
//! The VMM migrates: enable logging (one WP-all), copy everything, then
//! rounds of harvest -> WP-all -> copy of what was harvested; at the end the
//! guest stops, one last harvest and copy, and the destination must equal
//! the guest's memory.  The other order, WP-all -> harvest -> copy, must be
//! caught losing writes, and so must a split table made current.

mod common;
use common::migrate::{self, Guest, Order};
use common::tree::{Entry, Kind, Table, NONE};
use common::Rng;

use dirty_algos::wp_all::*;
use std::collections::BTreeSet;

const R: usize = 2;
const M: usize = 4;
const L: usize = 4;
const PAGES: usize = R * M * L;

#[derive(Clone, Copy)]
struct Rules {
    order: Order,
    /// A table split from a huge leaf keeps its leaves' W, current, under
    /// an entry with W (wrong), instead of losing W on all of them
    /// (rust/entry/wp_all_x86.rs: kd_rs_wp_link).
    split_current: bool,
}

const RIGHT: Rules = Rules {
    order: Order::HarvestFirst,
    split_current: false,
};

#[derive(Default, Debug)]
struct Stats {
    faults: u64,
    pushed: u64,
    protected: u64,
    unlogged_writes: u64,
}

struct Vm {
    tables: Vec<Table>,
    vm: VmWp,
    mem: [u64; PAGES],
    dirty: BTreeSet<usize>,
    rules: Rules,
    stats: Stats,
    /// Dirty logging on: writes map 4K pages (huge ones are split); before,
    /// writes may map huge pages writable.
    logging: bool,
}

const ROOT: usize = 0;

impl Vm {
    fn new(rules: Rules) -> Self {
        let mut vm = Vm {
            tables: Vec::new(),
            vm: VmWp::new(),
            mem: [0; PAGES],
            dirty: BTreeSet::new(),
            rules,
            stats: Stats::default(),
            logging: false,
        };
        vm.new_table(R, TableWp::new_empty(0));
        vm
    }

    fn new_table(&mut self, n: usize, wp: TableWp) -> usize {
        self.tables.push(Table {
            entries: vec![NONE; n],
            wp,
        });
        self.tables.len() - 1
    }

    fn idx(p: usize) -> (usize, usize, usize) {
        (p / (M * L), p / L % M, p % L)
    }

    fn gen(&self) -> u64 {
        self.vm.generation()
    }

    /// KVM_WRITE_PROTECT_ALL_MEM: O(R) here, O(roots) in the kernel.
    fn write_protect_all(&mut self) {
        let tables = &mut self.tables;
        self.vm.write_protect_all(|gen| {
            let (root, _) = tables.split_at_mut(1);
            let root = &mut root[ROOT];
            let entries = &mut root.entries;
            let r = root
                .wp
                .push_down(gen, |i| std::mem::replace(&mut entries[i].w, false));
            assert!(r.parent_may_write());
        });
    }

    /// Makes entry `i` of table `t` writable, recording it first.
    fn give_w(&mut self, t: usize, i: usize) {
        self.tables[t].wp.note_writable(i);
        self.tables[t].entries[i].w = true;
    }

    /// The hook, at each non-leaf entry of a fault's walk: bring the child
    /// table to the VM's generation if it is not, whatever the entry's W (a
    /// split table is stale under an entry KVM made writable), then give the
    /// entry W.  A walk never passes a stale table, so a fault records an
    /// entry only in a current table: rust/algo/wp_all.rs relies on that to rule
    /// out a push-down racing a record.
    fn descend(&mut self, t: usize, i: usize) -> usize {
        let Kind::Table(child) = self.tables[t].entries[i].kind else {
            unreachable!()
        };
        let gen = self.gen();
        let table = &mut self.tables[child];
        let entries = &mut table.entries;
        match table
            .wp
            .push_down(gen, |j| std::mem::replace(&mut entries[j].w, false))
        {
            PushDown::Pushed { protected, .. } => {
                self.stats.pushed += 1;
                self.stats.protected += u64::from(protected);
            }
            PushDown::Current => {}
            PushDown::Busy => unreachable!("one fault at a time in this model"),
        }
        if !self.tables[t].entries[i].w {
            self.give_w(t, i);
        }
        child
    }

    /// Splits the huge leaf at entry `i` of middle table `t` into a leaf
    /// table, as rust/entry/wp_all_x86.rs links it (kd_rs_wp_link): the new
    /// entries lose the huge leaf's W, the table starts current with nothing
    /// recorded, and the entry linking it has no W (the next fault's walk
    /// gives it W).  The wrong rule keeps the leaves' W in a table made
    /// current, under an entry with W, as upstream's make_nonleaf_spte would.
    fn split(&mut self, t: usize, i: usize) -> usize {
        let e = self.tables[t].entries[i];
        assert_eq!(e.kind, Kind::Leaf);
        let keep_w = self.rules.split_current && e.w;
        let child = self.new_table(L, TableWp::new_empty(self.gen()));
        for j in 0..L {
            if keep_w {
                self.tables[child].wp.note_writable(j);
            }
            self.tables[child].entries[j] = Entry {
                kind: Kind::Leaf,
                w: keep_w,
            };
        }
        self.tables[t].entries[i] = Entry {
            kind: Kind::Table(child),
            w: false,
        };
        if self.rules.split_current {
            self.give_w(t, i);
        }
        child
    }

    /// Installs a fresh empty table at entry `i` of `t`, as kd_rs_wp_link
    /// does: current, linked by an entry without W.
    fn install(&mut self, t: usize, i: usize, n: usize) -> usize {
        let child = self.new_table(n, TableWp::new_empty(self.gen()));
        self.tables[t].entries[i] = Entry {
            kind: Kind::Table(child),
            w: false,
        };
        child
    }

    /// KVM's fault path with the hook, for page `p`.  `make_w`: the leaf is
    /// made writable (a write fault, or a read fault KVM maps writable).
    fn fault(&mut self, p: usize, make_w: bool, huge: bool) {
        self.stats.faults += 1;
        let (r, m, l) = Self::idx(p);
        let mid = match self.tables[ROOT].entries[r].kind {
            Kind::None => self.install(ROOT, r, M),
            _ => self.descend(ROOT, r),
        };
        let (t, i) = match self.tables[mid].entries[m].kind {
            Kind::None if huge && (!make_w || !self.logging) => {
                // A huge page, without W on a read, with W on a write
                // before logging starts.
                self.tables[mid].entries[m].kind = Kind::Leaf;
                if make_w {
                    self.give_w(mid, m);
                }
                return;
            }
            Kind::None => (self.install(mid, m, L), l),
            Kind::Leaf if !make_w => return, // reads keep the huge mapping
            Kind::Leaf if !self.logging => {
                self.give_w(mid, m);
                return;
            }
            Kind::Leaf => {
                // A write to a huge page under dirty logging: split it; the
                // walk goes on into the new table (as KVM's does, without
                // the hook on the entry it just linked).
                (self.split(mid, m), l)
            }
            Kind::Table(_) => (self.descend(mid, m), l),
        };
        let leaf = self.tables[t].entries[i];
        if leaf.kind == Kind::None {
            self.tables[t].entries[i].kind = Kind::Leaf;
        }
        if make_w && !leaf.w {
            self.give_w(t, i);
            self.dirty.insert(p); // mark_page_dirty
        }
    }

    /// Whether the hardware lets a write to `p` through without a fault.
    fn writable(&self, p: usize) -> bool {
        let (r, m, l) = Self::idx(p);
        let e = self.tables[ROOT].entries[r];
        let Kind::Table(mid) = e.kind else {
            return false;
        };
        let e1 = self.tables[mid].entries[m];
        match e1.kind {
            Kind::None => false,
            Kind::Leaf => e.w && e1.w,
            Kind::Table(t) => {
                let e0 = self.tables[t].entries[l];
                e.w && e1.w && e0.kind == Kind::Leaf && e0.w
            }
        }
    }

    fn write(&mut self, p: usize) {
        if !self.writable(p) {
            // A fault that links new tables leaves their entries without
            // W: the guest's retry faults again, and that walk gives W.
            let huge = p.is_multiple_of(3);
            let mut faults = 0;
            while !self.writable(p) {
                faults += 1;
                assert!(faults <= 3, "page {p} still not writable after 3 faults");
                self.fault(p, true, huge);
            }
        } else if !self.dirty.contains(&p) {
            self.stats.unlogged_writes += 1;
        }
        self.mem[p] += 1;
    }

    fn read(&mut self, p: usize, rng: &mut Rng) {
        let (r, m, _) = Self::idx(p);
        let present = match self.tables[ROOT].entries[r].kind {
            Kind::Table(mid) => self.tables[mid].entries[m].kind != Kind::None,
            _ => false,
        };
        if !present || rng.next().is_multiple_of(8) {
            self.fault(
                p,
                rng.next().is_multiple_of(4),
                rng.next().is_multiple_of(2),
            );
        }
    }

    /// An MMU notifier or memslot change: drop one entry (and what is below).
    fn zap(&mut self, rng: &mut Rng) {
        let p = rng.next() as usize % PAGES;
        let (r, m, l) = Self::idx(p);
        let Kind::Table(mid) = self.tables[ROOT].entries[r].kind else {
            return;
        };
        match (rng.next() % 3, self.tables[mid].entries[m].kind) {
            (0, _) => self.tables[ROOT].entries[r] = NONE,
            (1, _) => self.tables[mid].entries[m] = NONE,
            (_, Kind::Table(t)) => self.tables[t].entries[l] = NONE,
            _ => {}
        }
    }

    /// Eager split of some huge leaf, outside any fault.
    fn eager_split(&mut self, rng: &mut Rng) {
        let p = rng.next() as usize % PAGES;
        let (r, m, _) = Self::idx(p);
        if let Kind::Table(mid) = self.tables[ROOT].entries[r].kind {
            if self.tables[mid].entries[m].kind == Kind::Leaf {
                self.split(mid, m);
            }
        }
    }

    fn harvest(&mut self) -> BTreeSet<usize> {
        std::mem::take(&mut self.dirty)
    }
}

impl Guest for Vm {
    fn run(&mut self, rng: &mut Rng) {
        for _ in 0..rng.next() % 6 {
            let p = rng.next() as usize % PAGES;
            match rng.next() % 10 {
                0..=5 => self.write(p),
                6 | 7 => self.read(p, rng),
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
        Vm::harvest(self)
    }

    fn memory(&self) -> &[u64] {
        &self.mem
    }
}

/// One migration (common/migrate.rs) with random guest activity between
/// the VMM's steps.  Returns the pages whose destination copy is stale at
/// the end.
fn migrate(seed: u64, rules: Rules, rounds: usize) -> (Vec<usize>, Stats) {
    let mut vm = Vm::new(rules);
    let stale = migrate::migrate(&mut vm, &mut Rng(seed | 1), rounds, rules.order);
    (stale, vm.stats)
}

#[test]
fn no_write_lost_with_harvest_then_wp_all() {
    let mut total = Stats::default();
    for seed in 0..20_000 {
        let (stale, stats) = migrate(seed, RIGHT, 6);
        assert!(stale.is_empty(), "seed {seed}: stale pages {stale:?}");
        total.faults += stats.faults;
        total.pushed += stats.pushed;
        total.protected += stats.protected;
        total.unlogged_writes += stats.unlogged_writes;
    }
    // The model did exercise the mechanism.
    assert!(
        total.pushed > 10_000 && total.protected > 10_000,
        "{total:?}"
    );
    assert!(
        total.unlogged_writes > 0,
        "writes through writable paths: {total:?}"
    );
}

fn first_loss(rules: Rules) -> Option<u64> {
    (0..20_000).find(|&seed| !migrate(seed, rules, 6).0.is_empty())
}

#[test]
fn wp_all_before_harvest_loses_writes() {
    let rules = Rules {
        order: Order::WpAllFirst,
        ..RIGHT
    };
    let lost = (0..2_000)
        .filter(|&s| !migrate(s, rules, 6).0.is_empty())
        .count();
    assert!(lost > 0, "the wrong order must be caught");
    eprintln!("WP-all -> harvest -> copy: {lost} of 2000 migrations lost a write");
}

#[test]
fn split_table_made_current_loses_writes() {
    let rules = Rules {
        split_current: true,
        ..RIGHT
    };
    assert!(
        first_loss(rules).is_some(),
        "a current split table must be caught"
    );
}

#[test]
fn push_down_visits_only_recorded_entries() {
    let t = TableWp::new_empty(0);
    t.note_writable(3);
    t.note_writable(511);
    let mut seen = Vec::new();
    let r = t.push_down(1, |i| {
        seen.push(i);
        i == 3
    });
    assert_eq!(seen, [3, 511]);
    assert_eq!(
        r,
        PushDown::Pushed {
            protected: 1,
            visited: 2
        }
    );
    assert!(t.is_current(1));
    assert!(!t.may_be_writable(3) && !t.may_be_writable(511));
    assert_eq!(t.push_down(1, |_| unreachable!()), PushDown::Current);
}

#[test]
fn concurrent_push_downs_claim_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Barrier};
    for round in 0..200u64 {
        let t = Arc::new(TableWp::new_empty(round));
        for i in (0..ENTRIES).step_by(3) {
            t.note_writable(i);
        }
        let cleared = Arc::new(AtomicU32::new(0));
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (t, cleared, barrier) = (t.clone(), cleared.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    loop {
                        match t.push_down(round + 1, |_| {
                            cleared.fetch_add(1, Ordering::Relaxed);
                            true
                        }) {
                            PushDown::Busy => std::hint::spin_loop(),
                            r => return r,
                        }
                    }
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let pushed = results
            .iter()
            .filter(|r| matches!(r, PushDown::Pushed { .. }))
            .count();
        assert_eq!(pushed, 1, "{results:?}");
        assert_eq!(
            cleared.load(Ordering::Relaxed) as usize,
            ENTRIES.div_ceil(3)
        );
        assert!(t.is_current(round + 1));
    }
}

/// The lockless fast path's protocol (Documentation/wp-all.rst, "The
/// lockless fast path"), step by step against a push-down of the same
/// table, over every interleaving: one entry, recorded or not, the table
/// current at generation 1 when both start.
///
/// Fast path F, which found every non-leaf entry above the table with W:
///   F1 read the table's generation word g0, give up if it is claimed;
///   F2 record the entry; F3 give it W (its cmpxchg); F4 read the word
///   again; F5 if it changed, record the entry again.
/// Push-down P to generation 2 (TableWp::push_down): P1 claim; P2 take
///   the record; P3 clear W on the entry if it was recorded; P4 publish.
/// After both: if the entry has W, the record must name it, or the
/// push-down after the next WP-all would leave it writable: a write after
/// that WP-all would not fault, and would not be logged.
#[derive(Clone, Copy, Default, Debug)]
struct FastState {
    gen: u64,
    claimed: bool,
    recorded: bool,
    w: bool,
    // F's locals
    g0: Option<(u64, bool)>,
    gave_up: bool,
    // P's locals
    taken: bool,
}

fn fast_step(s: &mut FastState, step: usize, renote: bool) {
    if s.gave_up {
        return;
    }
    match step {
        0 => {
            s.g0 = Some((s.gen, s.claimed));
            s.gave_up = s.claimed;
        }
        1 => s.recorded = true,
        2 => s.w = true,
        3 => {}
        4 => {
            if renote && s.g0 != Some((s.gen, s.claimed)) {
                s.recorded = true;
            }
        }
        _ => unreachable!(),
    }
}

fn push_step(s: &mut FastState, step: usize) {
    match step {
        0 => s.claimed = true,
        1 => s.taken = std::mem::replace(&mut s.recorded, false),
        2 => {
            if s.taken {
                s.w = false;
            }
        }
        3 => {
            s.gen = 2;
            s.claimed = false;
        }
        _ => unreachable!(),
    }
}

/// Every interleaving of F's 5 steps and P's 4; returns how many end with
/// a writable entry the record does not name.
fn fast_path_losses(renote: bool) -> usize {
    let mut losses = 0;
    for recorded in [false, true] {
        for mask in 0u32..(1 << 9) {
            if mask.count_ones() != 4 {
                continue;
            }
            let mut s = FastState {
                gen: 1,
                recorded,
                ..Default::default()
            };
            let (mut f, mut p) = (0, 0);
            for k in 0..9 {
                if mask & (1 << k) != 0 {
                    push_step(&mut s, p);
                    p += 1;
                } else {
                    fast_step(&mut s, f, renote);
                    f += 1;
                }
            }
            if s.w && !s.recorded {
                losses += 1;
            }
        }
    }
    losses
}

#[test]
fn fast_path_record_survives_a_racing_push_down() {
    assert_eq!(fast_path_losses(true), 0);
    // The test of the test: without the second record, some interleaving
    // leaves the entry writable and forgotten.
    assert!(fast_path_losses(false) > 0);
}

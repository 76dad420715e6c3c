//! rust/algo/pt_walk.rs on a model tree: 512-entry tables of every level, 4K
//! leaf tables, 2M and 1G huge leaves, holes, 4- and 5-level roots, a root
//! of concatenated tables; the x86 entry format (PS bit: huge) and the
//! arm64 stage-2 one (table bit: table); masks at unaligned bases that span
//! leaf tables and tables of higher levels.  Each walk is checked entry by
//! entry against a naive descent per page, and its cost (table entries read
//! to step down) against the one-descent-per-leaf-table bound.

mod common;
use common::Rng;

use dirty_algos::pt_walk::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// An entry format: the walker's bits, and what the model adds.
#[derive(Clone, Copy)]
struct Fmt {
    bits: EntryBits,
    /// Bits of a level-1 leaf beside present (arm64: the page type).
    page: u64,
    /// Other bits a leaf may have, to be kept (A, D, MMU-writable...).
    other: [u64; 3],
}

const X86: Fmt = Fmt {
    bits: EntryBits {
        present: 1 << 11,
        writable: 1 << 1,
        table_mask: 1 << 7,
        table_bits: 0,
        quiet: 0,
    },
    page: 0,
    other: [1 << 5, 1 << 6, 1 << 58],
};

const ARM64: Fmt = Fmt {
    bits: EntryBits {
        present: 1 << 0,
        writable: 1 << 7,
        table_mask: 1 << 1,
        table_bits: 1 << 1,
        quiet: 1 << 10,
    },
    page: 1 << 1,
    other: [1 << 10, 1 << 6, 1 << 51],
};

/// Tables in a vector (the root first, with `root_entries` entries); a
/// non-leaf entry holds its child's index << 12.
struct Model {
    fmt: Fmt,
    root_level: usize,
    root_entries: usize,
    tables: Vec<Box<[AtomicU64]>>,
}

const ROOT: usize = 0;

impl Tables for Model {
    type Table = usize;

    fn child(&self, entry: u64) -> usize {
        ((entry >> 12) & 0xff_ffff) as usize
    }

    fn entry(&self, table: usize, index: usize) -> &AtomicU64 {
        &self.tables[table][index]
    }
}

impl Model {
    fn new(fmt: Fmt, root_level: usize, root_entries: usize) -> Self {
        let mut m = Model {
            fmt,
            root_level,
            root_entries,
            tables: Vec::new(),
        };
        m.new_table(root_entries);
        m
    }

    fn walker(&self) -> Walker<&Model> {
        Walker::new(
            self,
            self.fmt.bits,
            ROOT,
            self.root_level,
            self.root_entries,
        )
    }

    fn new_table(&mut self, entries: usize) -> usize {
        self.tables
            .push((0..entries).map(|_| AtomicU64::new(0)).collect());
        self.tables.len() - 1
    }

    fn idx(&self, gfn: u64, level: usize) -> usize {
        let entries = if level == self.root_level {
            self.root_entries
        } else {
            ENTRIES
        };
        ((gfn >> (9 * (level - 1))) as usize) & (entries - 1)
    }

    fn is_table(&self, e: u64) -> bool {
        let b = self.fmt.bits;
        e & b.present != 0 && e & b.table_mask == b.table_bits
    }

    /// Maps `gfn` by a leaf at `level` (1 = 4K) with `flags` beside the
    /// format's type bits, creating tables on the way.
    fn map(&mut self, gfn: u64, level: usize, flags: u64) {
        let b = self.fmt.bits;
        let mut table = ROOT;
        for l in (level + 1..=self.root_level).rev() {
            let i = self.idx(gfn, l);
            let e = self.tables[table][i].load(Ordering::Relaxed);
            if self.is_table(e) {
                table = self.child(e);
                continue;
            }
            let child = self.new_table(ENTRIES);
            let link = b.present | b.writable | b.table_bits | (child as u64) << 12;
            self.tables[table][i].store(link, Ordering::Relaxed);
            table = child;
        }
        let kind = if level > 1 {
            b.table_mask & !b.table_bits
        } else if flags & b.present != 0 {
            self.fmt.page
        } else {
            0
        };
        let i = self.idx(gfn, level);
        self.tables[table][i].store(flags | kind | gfn << 12, Ordering::Relaxed);
    }

    /// The leaf entry mapping `gfn` by a naive descent: (table, index, level).
    fn lookup(&self, gfn: u64) -> Option<(usize, usize, usize)> {
        let mut table = ROOT;
        for l in (1..=self.root_level).rev() {
            let i = self.idx(gfn, l);
            let e = self.tables[table][i].load(Ordering::Relaxed);
            if e & self.fmt.bits.present == 0 {
                return None;
            }
            if l == 1 || !self.is_table(e) {
                return Some((table, i, l));
            }
            table = self.child(e);
        }
        unreachable!()
    }

    fn snapshot(&self) -> Vec<Vec<u64>> {
        self.tables
            .iter()
            .map(|t| t.iter().map(|e| e.load(Ordering::Relaxed)).collect())
            .collect()
    }
}

/// Flags of a random leaf: present or not, with or without W.
fn leaf(rng: &mut Rng, fmt: Fmt, pfn: u64) -> u64 {
    let (p, w, [a, d, mmu_w]) = (fmt.bits.present, fmt.bits.writable, fmt.other);
    match rng.next() % 9 {
        0 => 0,                     // not present (zapped)
        1 if pfn & 1 == 0 => w | a, // not present, other bits set
        1 => p | a | mmu_w,         // write-protected, fixable
        2 => p | a,                 // read-only mapping
        3 => p | w | mmu_w,         // writable, not accessed yet
        _ => p | w | a | d | mmu_w, // written since last time
    }
}

/// A tree over the pages [base, base + span): holes, 4K leaf tables, 2M
/// huge leaves, and one 1G huge leaf if `gig` is given.
fn build(rng: &mut Rng, m: &mut Model, base: u64, span: u64, gig: Option<u64>) {
    let f = m.fmt;
    let rw = f.bits.present | f.bits.writable | f.other[0] | f.other[1];
    if let Some(g) = gig {
        m.map(g, 3, rw);
    }
    let mut gfn = base & !511;
    while gfn < base + span {
        let in_gig = gig.is_some_and(|g| gfn >> 18 == g >> 18);
        match rng.next() % 6 {
            _ if in_gig => {}
            0 => {}                 // hole
            1 => m.map(gfn, 2, rw), // 2M
            _ => {
                for p in gfn..gfn + 512 {
                    let flags = leaf(rng, f, p);
                    m.map(p, 1, flags);
                }
            }
        }
        gfn += 512;
    }
}

/// Protects `words` 64-page words from `base` with random masks, and checks
/// every entry of the tree against a naive walk per page.  Returns how many
/// entries were cleared with a plain store and how many atomically.
fn check(rng: &mut Rng, mut m: Model, base: u64, words: u64, gig: Option<u64>) -> (u64, u64) {
    let (p, w_bit, quiet) = (m.fmt.bits.present, m.fmt.bits.writable, m.fmt.bits.quiet);
    let mut want_plain = 0;
    build(rng, &mut m, base, words * 64, gig);
    let before = m.snapshot();
    let mut w = m.walker();
    let mut want: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let mut cleared_olds = Vec::new();
    for word in 0..words {
        let gfn = base + word * 64;
        let mask = rng.word() as u64;
        let mut want_huge = false;
        let mut want_cleared = 0;
        for bit in 0..64 {
            if mask & 1 << bit == 0 {
                continue;
            }
            match m.lookup(gfn + bit) {
                Some((t, i, 1)) => {
                    let e = before[t][i];
                    if e & p != 0 && e & w_bit != 0 {
                        want.insert((t, i), e & !w_bit);
                        want_cleared += 1;
                        want_plain += u64::from(quiet != 0 && e & quiet == quiet);
                    }
                }
                Some(_) => want_huge = true,
                None => {}
            }
        }
        let got = w.protect(gfn, mask, |old| cleared_olds.push(old));
        assert_eq!(
            got.cleared, want_cleared,
            "word {word} at {gfn:#x} mask {mask:#x}"
        );
        assert_eq!(
            got.huge, want_huge,
            "word {word} at {gfn:#x} mask {mask:#x}"
        );
    }
    let after = m.snapshot();
    for (t, table) in after.iter().enumerate() {
        for (i, &e) in table.iter().enumerate() {
            let expect = *want.get(&(t, i)).unwrap_or(&before[t][i]);
            assert_eq!(e, expect, "table {t} entry {i}");
        }
    }
    // Each callback got the entry as it was, W included.
    assert_eq!(cleared_olds.len(), want.len());
    assert!(cleared_olds
        .iter()
        .all(|&old| old & (w_bit | p) == w_bit | p));
    assert_eq!(w.stats.cleared, want.len() as u64);
    assert_eq!(w.stats.cleared_plain, want_plain);
    assert_eq!(w.stats.words, words);
    (want_plain, want.len() as u64 - want_plain)
}

#[test]
fn random_trees_every_level() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Entries cleared with a plain store and atomically, per format.
    let mut by = [[0u64; 2]; 2];
    for round in 0..48 {
        // x86 4- and 5-level roots; arm64 stage 2 with a start level of
        // 4 (walker levels: 1 = 4K) or 3 with 2 or 16 concatenated tables.
        let (fmt, root_level, root_entries) = match round % 4 {
            0 => (X86, 4, 512),
            1 => (X86, 5, 512),
            2 => (ARM64, 4, 512),
            _ => (ARM64, 3, if round % 8 == 3 { 1024 } else { 8192 }),
        };
        // Unaligned bases (memslots need not start at a multiple of 64),
        // some just below a 2M, a 1G and a 512G boundary.
        let base = match round % 5 {
            0 => rng.next() % (1 << 20),
            1 => (1 << 18) * (1 + rng.next() % 4) - 1 - rng.next() % 600,
            2 => (1 << 27) - 1 - rng.next() % 600,
            3 => (rng.next() % (1 << 20)) & !63,
            _ => (1 << 27) + (1 << 18) * (rng.next() % 4),
        };
        let gig = (round % 3 == 0).then(|| (base + 2000) & !((1 << 18) - 1));
        let (plain, atomic) = check(
            &mut rng,
            Model::new(fmt, root_level, root_entries),
            base,
            40,
            gig,
        );
        let f = usize::from(fmt.bits.quiet != 0);
        by[f][0] += plain;
        by[f][1] += atomic;
    }
    // x86 never stores plainly; arm64 does for leaves with AF, not others.
    assert_eq!(by[0][0], 0);
    assert!(by[0][1] > 0 && by[1][0] > 0 && by[1][1] > 0, "{by:?}");
}

#[test]
fn one_descent_per_leaf_table() {
    // 1 GiB at 100 % dirty, 4K leaves everywhere: 4096 words, 512 leaf
    // tables.  The root's entry and the level-3 entry are read once, then
    // one level-2 entry per leaf table: 514 steps (KVM: 3 per word, 12288).
    for fmt in [X86, ARM64] {
        let mut m = Model::new(fmt, 4, 512);
        let base = 1 << 18;
        let rw = fmt.bits.present | fmt.bits.writable;
        for p in base..base + (1 << 18) {
            m.map(p, 1, rw);
        }
        let mut w = m.walker();
        let mut n = 0u64;
        for word in 0..4096 {
            let got = w.protect(base + word * 64, u64::MAX, |_| n += 1);
            assert_eq!(
                got,
                Protected {
                    cleared: 64,
                    huge: false
                }
            );
        }
        assert_eq!(n, 1 << 18);
        assert_eq!(w.stats.leaf_tables, 512);
        assert_eq!(w.stats.steps, 514);
        // A second pass finds every W already clear and changes nothing.
        let before = m.snapshot();
        for word in 0..4096 {
            let got = w.protect(base + word * 64, u64::MAX, |_| panic!("cleared twice"));
            assert_eq!(got.cleared, 0);
        }
        assert_eq!(m.snapshot(), before);
    }
}

#[test]
fn mask_across_two_leaf_tables_and_two_gig_entries() {
    // A slot starting 32 pages before a 1G boundary: its first word has 32
    // pages in the last leaf table of one 1G region and 32 in the first of
    // the next.
    let mut m = Model::new(X86, 4, 512);
    let rw = X86.bits.present | X86.bits.writable;
    let gfn = (1 << 18) - 32;
    for p in gfn..gfn + 64 {
        m.map(p, 1, rw);
    }
    let mut w = m.walker();
    let got = w.protect(gfn, u64::MAX, |_| {});
    assert_eq!(got.cleared, 64);
    assert_eq!(w.stats.leaf_tables, 2);
    for p in gfn..gfn + 64 {
        let (t, i, _) = m.lookup(p).unwrap();
        assert_eq!(
            m.tables[t][i].load(Ordering::Relaxed) & X86.bits.writable,
            0
        );
    }
}

#[test]
fn huge_leaves_are_reported_and_left_alone() {
    for fmt in [X86, ARM64] {
        let mut m = Model::new(fmt, 4, 512);
        let rw = fmt.bits.present | fmt.bits.writable;
        m.map(512, 2, rw);
        m.map(1024, 1, rw);
        let (t, i, l) = m.lookup(600).unwrap();
        let huge = m.tables[t][i].load(Ordering::Relaxed);
        assert_eq!(l, 2);
        let mut w = m.walker();
        // Pages 1000..1064: 24 in the 2M leaf, 40 in the leaf table after it.
        let got = w.protect(1000, u64::MAX, |_| {});
        assert_eq!(
            got,
            Protected {
                cleared: 1,
                huge: true
            }
        );
        assert_eq!(m.tables[t][i].load(Ordering::Relaxed), huge);
        // Only bits over the 4K table: no huge page reported.
        let got = w.protect(1024, 1, |_| {});
        assert_eq!(
            got,
            Protected {
                cleared: 0,
                huge: false
            }
        );
    }
}

#[test]
fn invalid_table_descriptor_is_skipped() {
    // arm64 write-protect-all: a pending table descriptor is invalid, its
    // table kept; the pages under it are not touched (they are protected
    // when the descriptor is pushed down).
    let mut m = Model::new(ARM64, 4, 512);
    let rw = ARM64.bits.present | ARM64.bits.writable;
    for p in 0..1024 {
        m.map(p, 1, rw);
    }
    let (t, i, _) = m.lookup(0).unwrap();
    let _ = (t, i);
    let link = m.tables[1][0].load(Ordering::Relaxed); // level 3 -> level 2
    m.tables[1][0].store(link & !ARM64.bits.present, Ordering::Relaxed);
    let before = m.snapshot();
    let mut w = m.walker();
    let got = w.protect(64, u64::MAX, |_| panic!("under a pending descriptor"));
    assert_eq!(got, Protected::default());
    assert_eq!(m.snapshot(), before);
}

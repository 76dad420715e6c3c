//! rust/algo/rmap_walk.rs on a model of the shadow MMU's rmaps: heads that are
//! empty, one SPTE, or a chain of descriptors laid out as pte_list_add()
//! leaves them (the first one partly filled, the rest full); SPTEs with and
//! without W, with A/D/MMU-writable bits to keep, and a few not present;
//! huge-page rmaps of a slot whose first gfn is not aligned.  Each
//! protect is checked SPTE by SPTE against what KVM's
//! kvm_mmu_write_protect_pt_masked() does.

mod common;
use common::Rng;

use dirty_algos::rmap_walk::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const EXT: usize = 14;
const PRESENT: u64 = 1 << 11;
const W: u64 = 1 << 1;
const OTHER: [u64; 3] = [1 << 5, 1 << 6, 1 << 58];
const BITS: RmapBits = RmapBits {
    present: PRESENT,
    writable: W,
    many: 1,
};

/// SPTEs and descriptors in vectors.  An SPTE's address is (index + 1) * 8,
/// a descriptor's (index + 1) * 16: never 0, bit 0 clear, as in KVM.
#[derive(Default)]
struct Model {
    heads: [Vec<usize>; LEVELS],
    sptes: Vec<AtomicU64>,
    /// Per descriptor: its entries and the next one.
    descs: Vec<([usize; EXT], usize)>,
    /// Per 4K page: its SPTEs' indices.
    page_sptes: Vec<Vec<usize>>,
}

impl Rmaps for Model {
    fn head(&self, level: usize, index: usize) -> Option<usize> {
        self.heads[level - 1].get(index).copied()
    }

    fn desc_entries(&self) -> usize {
        EXT
    }

    fn desc_spte(&self, desc: usize, i: usize) -> usize {
        self.descs[desc / 16 - 1].0[i]
    }

    fn desc_more(&self, desc: usize) -> usize {
        self.descs[desc / 16 - 1].1
    }

    fn spte(&self, sptep: usize) -> &AtomicU64 {
        &self.sptes[sptep / 8 - 1]
    }
}

impl Model {
    /// `npages` 4K pages with 0, 1 or up to 40 SPTEs each.
    fn new(rng: &mut Rng, npages: usize) -> Self {
        let mut m = Model::default();
        for _ in 0..npages {
            let n = match rng.next() % 10 {
                0..=2 => 0,
                3..=6 => 1,
                _ => 2 + (rng.next() % 39) as usize,
            };
            let ids: Vec<usize> = (0..n).map(|_| m.new_spte(rng)).collect();
            let head = m.head_of(&ids);
            m.heads[0].push(head);
            m.page_sptes.push(ids);
        }
        m
    }

    fn new_spte(&mut self, rng: &mut Rng) -> usize {
        let r = rng.next();
        let mut v = (r >> 20 & 0xffff) << 12;
        v |= if r.is_multiple_of(16) { 0 } else { PRESENT };
        v |= if r & 0x30 == 0 { 0 } else { W };
        for (i, b) in OTHER.iter().enumerate() {
            if r >> (8 + i) & 1 == 1 {
                v |= b;
            }
        }
        self.sptes.push(AtomicU64::new(v));
        self.sptes.len() - 1
    }

    /// The head naming `ids`, as pte_list_add() leaves it: one SPTE
    /// directly; more in descriptors, the first partly filled.
    fn head_of(&mut self, ids: &[usize]) -> usize {
        match ids.len() {
            0 => 0,
            1 => (ids[0] + 1) * 8,
            n => {
                let first = match n % EXT {
                    0 => EXT,
                    r => r,
                };
                let mut chunks = vec![&ids[..first]];
                chunks.extend(ids[first..].chunks(EXT));
                let mut next = 0;
                for chunk in chunks.iter().rev() {
                    let mut entries = [0; EXT];
                    for (e, &id) in entries.iter_mut().zip(chunk.iter()) {
                        *e = (id + 1) * 8;
                    }
                    self.descs.push((entries, next));
                    next = self.descs.len() * 16;
                }
                next | 1
            }
        }
    }

    fn values(&self) -> Vec<u64> {
        self.sptes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect()
    }
}

/// What KVM does: W cleared on the present SPTEs of the masked pages.
fn expect(m: &Model, before: &[u64], first_page: usize, mask: u64) -> (Vec<u64>, u32) {
    let mut want = before.to_vec();
    let mut cleared = 0;
    for bit in 0..64 {
        if mask >> bit & 1 == 0 {
            continue;
        }
        for &id in &m.page_sptes[first_page + bit] {
            let v = want[id];
            if v & PRESENT != 0 && v & W != 0 {
                want[id] = v & !W;
                cleared += 1;
            }
        }
    }
    (want, cleared)
}

/// The model with its 4K heads also as one atomic array, as the kernel's
/// rmaps are: [`Rmaps::heads_4k`] serves whole words from it.
/// Without `rows`, the model alone (one head at a time).
struct Rows<'a> {
    m: &'a Model,
    heads: Vec<AtomicUsize>,
    rows: bool,
}

impl<'a> Rows<'a> {
    fn new(m: &'a Model, rows: bool) -> Self {
        let heads = m.heads[0].iter().map(|&h| AtomicUsize::new(h)).collect();
        Rows { m, heads, rows }
    }
}

impl Rmaps for Rows<'_> {
    fn head(&self, level: usize, index: usize) -> Option<usize> {
        self.m.head(level, index)
    }

    fn desc_entries(&self) -> usize {
        self.m.desc_entries()
    }

    fn desc_spte(&self, desc: usize, i: usize) -> usize {
        self.m.desc_spte(desc, i)
    }

    fn desc_more(&self, desc: usize) -> usize {
        self.m.desc_more(desc)
    }

    fn spte(&self, sptep: usize) -> &AtomicU64 {
        self.m.spte(sptep)
    }

    fn heads_4k(&self, first: usize) -> Option<&[AtomicUsize; 64]> {
        if !self.rows {
            return None;
        }
        self.heads
            .get(first..first.checked_add(64)?)?
            .try_into()
            .ok()
    }
}

#[test]
fn protects_exactly_the_masked_pages() {
    protects_exactly(false);
}

#[test]
fn protects_exactly_the_masked_pages_by_rows() {
    protects_exactly(true);
}

fn protects_exactly(rows: bool) {
    let mut rng = Rng(0x5eed_0001);
    for round in 0..40 {
        let words = 1 + (rng.next() % 16) as usize;
        let m = Model::new(&mut rng, words * 64);
        let mut walker = RmapWalker::new(Rows::new(&m, rows), BITS, 0x1_0000 + round);
        let (mut sptes, mut cleared) = (0, 0);
        for word in 0..words {
            let mask = rng.word() as u64;
            let before = m.values();
            let (want, n) = expect(&m, &before, word * 64, mask);
            assert_eq!(
                walker.protect(word as u64 * 64, mask),
                n,
                "round {round} word {word}"
            );
            assert_eq!(m.values(), want, "round {round} word {word} mask {mask:#x}");
            // Idempotent: nothing is writable any more.
            assert_eq!(walker.protect(word as u64 * 64, mask), 0);
            sptes += 2
                * (0..64)
                    .filter(|b| mask >> b & 1 == 1)
                    .map(|b| m.page_sptes[word * 64 + b].len() as u64)
                    .sum::<u64>();
            cleared += u64::from(n);
        }
        assert_eq!(walker.stats.words, 2 * words as u64);
        assert_eq!(walker.stats.sptes, sptes);
        assert_eq!(walker.stats.cleared, cleared);
    }
}

#[test]
fn long_chains_and_full_descriptors() {
    // 14, 15, 28 and 29 SPTEs: a full first descriptor, one entry in it,
    // two full, and one over.
    let mut rng = Rng(7);
    let mut m = Model::default();
    for n in [EXT, EXT + 1, 2 * EXT, 2 * EXT + 1] {
        let ids: Vec<usize> = (0..n)
            .map(|_| {
                let id = m.new_spte(&mut rng);
                m.sptes[id].store(PRESENT | W | OTHER[0], Ordering::Relaxed);
                id
            })
            .collect();
        let head = m.head_of(&ids);
        m.heads[0].push(head);
        m.page_sptes.push(ids);
    }
    let mut walker = RmapWalker::new(&m, BITS, 0);
    assert_eq!(walker.protect(0, 0b1111) as usize, 6 * EXT + 2);
    assert!(m.values().iter().all(|&v| v == PRESENT | OTHER[0]));
}

#[test]
fn huge_mapped_at_the_mask_edges() {
    let mut rng = Rng(0x4_06e);
    for _ in 0..2000 {
        // A slot of 1 to 3 GiB from an unaligned first gfn.
        let base = (rng.next() % (1 << 22)) & !0x3f;
        let npages = (1 + rng.next() % (3 << 18)) as usize;
        let lpages = |level: u32| {
            let s = 9 * (level - 1);
            (((base + npages as u64 - 1) >> s) - (base >> s) + 1) as usize
        };
        let mut m = Model::default();
        m.heads[1] = (0..lpages(2))
            .map(|_| usize::from(rng.next().is_multiple_of(3)) * 8)
            .collect();
        m.heads[2] = (0..lpages(3))
            .map(|_| usize::from(rng.next().is_multiple_of(4)) * 8)
            .collect();
        let walker = RmapWalker::new(&m, BITS, base);
        let word = (rng.next() as usize % npages.div_ceil(64)) as u64;
        let mask = rng.word() as u64;
        let naive = mask != 0 && {
            let first = base + word * 64 + u64::from(mask.trailing_zeros());
            let last = base + word * 64 + 63 - u64::from(mask.leading_zeros());
            [(1, 9), (2, 18)].iter().any(|&(l, s)| {
                [first, last].iter().any(|&g| {
                    let i = ((g >> s) - (base >> s)) as usize;
                    m.heads[l].get(i).is_none_or(|&h| h != 0)
                })
            })
        };
        assert_eq!(
            walker.huge_mapped(word * 64, mask),
            naive,
            "base {base:#x} word {word}"
        );
    }
    // Nothing huge: never.
    let m = Model::default();
    let walker = RmapWalker::new(&m, BITS, 0);
    assert!(
        walker.huge_mapped(0, 1),
        "a head past the array's end counts as mapped"
    );
    let mut m = Model::default();
    m.heads[1] = vec![0; 4];
    m.heads[2] = vec![0; 1];
    let walker = RmapWalker::new(&m, BITS, 0);
    assert!(!walker.huge_mapped(0, u64::MAX));
    assert!(!walker.huge_mapped(64 * 15, 1 << 63));
}

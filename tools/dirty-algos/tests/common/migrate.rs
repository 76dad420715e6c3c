//! The VMM's side of the write-protect-all models (wp_all.rs,
//! wp_all_shadow.rs): a migration over a model of the guest and its MMU.
#![allow(dead_code)] // not every test file uses it

use super::Rng;
use std::collections::BTreeSet;

/// A model of a guest and its MMU, as the VMM sees it.
pub trait Guest {
    /// Random guest activity between two of the VMM's steps.
    fn run(&mut self, rng: &mut Rng);
    /// Dirty logging turned on: nothing logged so far, huge pages split
    /// by the writes that need 4K pages from now on.
    fn start_logging(&mut self);
    /// KVM_WRITE_PROTECT_ALL_MEM.
    fn write_protect_all(&mut self);
    /// The pages logged since the last harvest.
    fn harvest(&mut self) -> BTreeSet<usize>;
    /// The guest's memory, one counter per page.
    fn memory(&self) -> &[u64];
}

/// The order of a round's steps.
#[derive(Clone, Copy, PartialEq)]
pub enum Order {
    /// harvest -> WP-all -> copy: the protocol the api documents.
    HarvestFirst,
    /// WP-all -> harvest -> copy: loses writes.
    WpAllFirst,
}

/// One migration with guest activity between the VMM's steps: some memory
/// mapped before logging starts; logging on (one WP-all, the O(1) enable)
/// and a copy of everything; `rounds` rounds of harvest, WP-all and copy of
/// what was harvested; the guest stops, a last harvest and copy.  Returns
/// the pages whose copy differs from the guest's memory.
pub fn migrate(vm: &mut impl Guest, rng: &mut Rng, rounds: usize, order: Order) -> Vec<usize> {
    let pages = vm.memory().len();
    for _ in 0..pages {
        vm.run(rng);
    }
    vm.start_logging();
    vm.write_protect_all();
    vm.run(rng);
    let mut dest = vm.memory().to_vec();
    for _ in 0..rounds {
        vm.run(rng);
        let harvested = match order {
            Order::HarvestFirst => {
                let h = vm.harvest();
                vm.run(rng);
                vm.write_protect_all();
                h
            }
            Order::WpAllFirst => {
                vm.write_protect_all();
                vm.run(rng);
                vm.harvest()
            }
        };
        vm.run(rng);
        for p in harvested {
            dest[p] = vm.memory()[p];
        }
    }
    for p in vm.harvest() {
        dest[p] = vm.memory()[p];
    }
    (0..pages).filter(|&p| dest[p] != vm.memory()[p]).collect()
}

//! The x86-like page-table tree the write-protect-all models walk
//! (wp_all.rs, wp_all_shadow.rs): entries with a W bit that applies to all
//! below them, tables with their `TableWp`.
#![allow(dead_code)] // not every test file uses it

use dirty_algos::wp_all::TableWp;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    None,
    Table(usize),
    Leaf,
}

#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub w: bool,
}

pub const NONE: Entry = Entry {
    kind: Kind::None,
    w: false,
};

pub struct Table {
    pub entries: Vec<Entry>,
    pub wp: TableWp,
}

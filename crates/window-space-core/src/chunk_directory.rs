//! Where each published chunk of a ledger is mapped in this process: symbol
//! → chunk index → address.
//!
//! Each process keeps one per open ledger, filled from the chunk headers it
//! has read. Its memory follows the chunks that exist, not the window indices
//! they start at: a symbol's chunks are kept in groups of [`GROUP`]
//! consecutive chunk indices, a group allocated when its first chunk is
//! published. A claim at window `w` costs one group (about 2 KiB) whatever
//! `w` is; a directory dense in the chunk index would cost
//! `w / rows per chunk` entries for that symbol (hundreds of MiB near the end
//! of a 2^32-window schedule).
//!
//! Both levels, symbol ids and a symbol's group numbers, are a [`DenseMap`]:
//! a table indexed by key (a lookup is two indexings) while keys grow about in
//! order, as symbol ids do (the symbol map hands them out in order) and as
//! windows are claimed; a key far past the table (a claim far ahead, or a
//! damaged header naming symbol 2^32 − 1) goes to an ordered map instead, so
//! it costs about what any other chunk costs.

use std::collections::BTreeMap;

use crate::mapping::ChunkAddr;

/// Consecutive chunk indices per group.
pub(crate) const GROUP: usize = 64;

/// Symbol ids past twice the symbol table's length that may still grow it.
const SYMBOL_SLACK: usize = 1 << 16;
/// Group numbers past twice a symbol's group table's length that may still grow it.
const GROUP_SLACK: usize = 64;

type Group = [Option<ChunkAddr>; GROUP];
type Groups = DenseMap<Box<Group>>;

/// A map of `u32` keys that are mostly dense from 0: a table indexed by key
/// while a new key stays within twice the table's length plus `slack`, an
/// ordered map for keys past that (which move into the table when it grows
/// over them). Every key in `far` is at least `dense.len()`.
struct DenseMap<T> {
    dense: Vec<Option<T>>,
    far: BTreeMap<u32, T>,
    slack: usize,
}

impl<T> DenseMap<T> {
    fn new(slack: usize) -> Self {
        Self { dense: Vec::new(), far: BTreeMap::new(), slack }
    }

    #[inline]
    fn get(&self, key: u32) -> Option<&T> {
        match self.dense.get(key as usize) {
            Some(v) => v.as_ref(),
            None => self.far.get(&key),
        }
    }

    /// The value at `key`, made by `make` if there is none (then `true`).
    fn get_or_insert_with(&mut self, key: u32, make: impl FnOnce() -> T) -> (&mut T, bool) {
        let k = key as usize;
        if k >= self.dense.len() && k < self.dense.len().saturating_mul(2).saturating_add(self.slack) {
            self.dense.resize_with(k + 1, || None);
            let moved: Vec<u32> = self.far.range(..=key).map(|(id, _)| *id).collect();
            for id in moved {
                self.dense[id as usize] = self.far.remove(&id);
            }
        }
        let (slot, made) = match self.dense.get_mut(k) {
            Some(slot) => {
                let made = slot.is_none();
                (slot, made)
            }
            None => {
                let made = !self.far.contains_key(&key);
                return (self.far.entry(key).or_insert_with(make), made);
            }
        };
        (slot.get_or_insert_with(make), made)
    }

    /// Every entry, by ascending key.
    fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        let dense = self.dense.iter().enumerate().filter_map(|(k, v)| v.as_ref().map(|v| (k as u32, v)));
        dense.chain(self.far.iter().map(|(k, v)| (*k, v)))
    }

    /// Entries held (table slots count whether used or not).
    #[cfg(test)]
    fn table_len(&self) -> usize {
        self.dense.capacity() + self.far.len()
    }
}

/// Published chunks of one ledger, as this process knows them.
pub(crate) struct ChunkDirectory {
    /// By symbol id: that symbol's groups, by group number (chunk index / [`GROUP`]).
    by_symbol: DenseMap<Groups>,
    /// Chunks of the file read so far (the file's chunks `0..known_chunks`).
    pub(crate) known_chunks: u64,
    /// Groups allocated, over all symbols.
    groups: usize,
}

impl Default for ChunkDirectory {
    fn default() -> Self {
        Self { by_symbol: DenseMap::new(SYMBOL_SLACK), known_chunks: 0, groups: 0 }
    }
}

impl ChunkDirectory {
    /// The chunk `(symbol, chunk_idx)`, if this process has read it.
    #[inline]
    pub(crate) fn get(&self, symbol: u32, chunk_idx: u32) -> Option<ChunkAddr> {
        self.by_symbol.get(symbol)?.get(chunk_idx / GROUP as u32)?[chunk_idx as usize % GROUP]
    }

    /// Records a chunk; false if the directory already held one for
    /// `(symbol, chunk_idx)` (which then is not replaced).
    pub(crate) fn insert(&mut self, symbol: u32, chunk_idx: u32, addr: ChunkAddr) -> bool {
        let (groups, _) = self.by_symbol.get_or_insert_with(symbol, || DenseMap::new(GROUP_SLACK));
        let (group, made) = groups.get_or_insert_with(chunk_idx / GROUP as u32, || Box::new([None; GROUP]));
        let entry = &mut group[chunk_idx as usize % GROUP];
        let fresh = entry.is_none();
        if fresh {
            *entry = Some(addr);
        }
        if made {
            self.groups += 1;
        }
        fresh
    }

    /// The chunks in `groups`, by ascending chunk index.
    fn chunks_in(groups: &Groups) -> impl Iterator<Item = (u32, ChunkAddr)> + '_ {
        groups.iter().flat_map(|(g, group)| group.iter().enumerate().filter_map(move |(i, a)| a.map(|a| (g * GROUP as u32 + i as u32, a))))
    }

    /// The chunks of `symbol`, by ascending chunk index.
    pub(crate) fn chunks_of(&self, symbol: u32) -> impl Iterator<Item = (u32, ChunkAddr)> + '_ {
        self.by_symbol.get(symbol).into_iter().flat_map(Self::chunks_in)
    }

    /// Every chunk: (symbol, chunk index, address), by symbol and then chunk index.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u32, u32, ChunkAddr)> + '_ {
        self.by_symbol.iter().flat_map(|(s, groups)| Self::chunks_in(groups).map(move |(c, a)| (s, c, a)))
    }

    /// Symbol ids `from` and up that own at least one chunk, with their chunk counts.
    pub(crate) fn symbols_from(&self, from: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.by_symbol
            .iter()
            .filter(move |(s, _)| *s >= from)
            .map(|(s, groups)| (s, Self::chunks_in(groups).count() as u64))
            .filter(|(_, n)| *n > 0)
    }

    /// Bytes of heap the directory holds for its groups and tables
    /// (B-tree nodes counted as one pointer an entry).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let group_tables: usize = self.by_symbol.iter().map(|(_, g)| g.table_len() * std::mem::size_of::<Option<Box<Group>>>()).sum();
        let symbol_table = self.by_symbol.table_len() * std::mem::size_of::<Option<Groups>>();
        self.groups * std::mem::size_of::<Group>() + group_tables + symbol_table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: usize) -> ChunkAddr {
        ChunkAddr::for_tests(n)
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut d = ChunkDirectory::default();
        let far = u32::MAX / 146;
        assert!(d.insert(3, 0, addr(1)));
        assert!(d.insert(3, 63, addr(2)));
        assert!(d.insert(3, 64, addr(3)));
        assert!(d.insert(3, far, addr(4)));
        assert!(d.insert(0, far, addr(5)));
        assert!(!d.insert(3, 63, addr(9)), "a second chunk for one (symbol, index) is refused");
        assert_eq!(d.get(3, 63), Some(addr(2)), "and does not replace the first");
        assert_eq!(d.get(3, 0), Some(addr(1)));
        assert_eq!(d.get(3, 64), Some(addr(3)));
        assert_eq!(d.get(3, far), Some(addr(4)));
        assert_eq!(d.get(0, far), Some(addr(5)));
        for (s, c) in [(3, 1), (3, 62), (3, 65), (3, far - 1), (3, far + 1), (0, 0), (1, far), (2, 0), (4, 0), (u32::MAX, 0), (3, u32::MAX)]
        {
            assert_eq!(d.get(s, c), None, "({s}, {c})");
        }
        let mine: Vec<_> = d.chunks_of(3).map(|(c, _)| c).collect();
        assert_eq!(mine, vec![0, 63, 64, far]);
        let all: Vec<_> = d.all().map(|(s, c, _)| (s, c)).collect();
        assert_eq!(all, vec![(0, far), (3, 0), (3, 63), (3, 64), (3, far)]);
        assert_eq!(d.symbols_from(0).collect::<Vec<_>>(), vec![(0, 1), (3, 4)]);
        assert_eq!(d.symbols_from(1).collect::<Vec<_>>(), vec![(3, 4)]);
        assert_eq!(d.symbols_from(4).count(), 0);
    }

    #[test]
    fn symbols_far_past_the_table_are_found_and_move_in_when_it_grows() {
        let mut d = ChunkDirectory::default();
        let far = (SYMBOL_SLACK * 4) as u32;
        assert!(d.insert(far, 7, addr(1)));
        assert!(d.insert(u32::MAX, 0, addr(2)));
        assert_eq!(d.by_symbol.dense.len(), 0, "ids far past the table stay out of it");
        assert_eq!(d.get(far, 7), Some(addr(1)));
        assert!(!d.insert(far, 7, addr(3)), "a duplicate of a far symbol's chunk is refused");
        // Ids arriving in order grow the table past `far`: its chunks move in.
        for s in (0..=far + 1).step_by(SYMBOL_SLACK / 2) {
            d.insert(s, 0, addr(10 + s as usize));
        }
        assert!(d.by_symbol.dense.len() > far as usize);
        assert!(d.by_symbol.far.keys().all(|&s| s as usize >= d.by_symbol.dense.len()));
        assert_eq!(d.get(far, 7), Some(addr(1)));
        assert_eq!(d.get(u32::MAX, 0), Some(addr(2)));
        assert!(!d.insert(far, 7, addr(3)));
        let symbols: Vec<u32> = d.symbols_from(far).map(|(s, _)| s).collect();
        assert_eq!(symbols, vec![far, u32::MAX]);
        assert_eq!(d.all().last().map(|(s, c, _)| (s, c)), Some((u32::MAX, 0)));
    }

    #[test]
    fn memory_follows_the_chunks_that_exist_not_their_window() {
        // One chunk at the last chunk index of a 2^32-window schedule costs
        // what one chunk at index 0 costs.
        let mut near = ChunkDirectory::default();
        near.insert(0, 0, addr(1));
        let mut far = ChunkDirectory::default();
        far.insert(0, u32::MAX / 146, addr(1));
        assert!(far.heap_bytes() <= near.heap_bytes(), "far {} bytes, near {} bytes", far.heap_bytes(), near.heap_bytes());
        assert!(far.heap_bytes() < 4096, "{} bytes for one chunk", far.heap_bytes());
        // A chunk naming a symbol id far past those in use costs what any chunk costs.
        let mut far_symbol = ChunkDirectory::default();
        far_symbol.insert(u32::MAX, 0, addr(1));
        assert!(far_symbol.heap_bytes() < 4096, "{} bytes for one chunk of symbol 2^32 - 1", far_symbol.heap_bytes());
        // A thousand chunks spread one per group cost a thousand groups.
        let mut spread = ChunkDirectory::default();
        for i in 0..1000u32 {
            spread.insert(0, i * 100_000, addr(i as usize));
        }
        assert_eq!(spread.groups, 1000);
        assert!(spread.heap_bytes() < 1000 * 2 * std::mem::size_of::<Group>(), "{} bytes", spread.heap_bytes());
        assert_eq!(spread.chunks_of(0).count(), 1000);
    }
}

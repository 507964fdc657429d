//! Where each published chunk of a ledger is mapped in this process: symbol
//! → chunk index → address.
//!
//! Each process keeps one per open ledger, filled from the chunk headers it
//! has read. Its memory follows the chunks that exist, not the window indices
//! they start at: a symbol's chunks are kept in groups of [`GROUP`]
//! consecutive chunk indices, a group allocated when its first chunk is
//! published and found through an ordered map of the groups that exist. A
//! claim at window `w` costs one group (about 2 KiB) whatever `w` is; a
//! directory dense in the chunk index would cost `w / rows per chunk` entries
//! for that symbol (hundreds of MiB near the end of a 2^32-window schedule).
//! A lookup is a search among a symbol's groups (one B-tree node for up to
//! eleven groups, i.e. 704 chunks) and an index into the group.
//!
//! Symbol ids are dense (the symbol map hands them out in order), so a
//! symbol's groups are found by indexing a table by id. The table grows to
//! take an id only while the id stays within twice its length plus
//! [`DENSE_SLACK`]; a chunk header naming an id far past that (only damage
//! or a hand-made file can) is kept in a sparse map instead, so it costs what
//! any other chunk costs and bootstrap can go on to judge it.

use std::collections::BTreeMap;

use crate::mapping::ChunkAddr;

/// Consecutive chunk indices per group.
pub(crate) const GROUP: usize = 64;

/// Ids past twice the table's length that may still grow it.
const DENSE_SLACK: usize = 1 << 16;

type Group = [Option<ChunkAddr>; GROUP];
type Groups = BTreeMap<u32, Box<Group>>;

/// Published chunks of one ledger, as this process knows them.
#[derive(Default)]
pub(crate) struct ChunkDirectory {
    /// By symbol id: the groups of that symbol's chunks, by group number
    /// (chunk index / [`GROUP`]).
    by_symbol: Vec<Groups>,
    /// Symbols with ids past `by_symbol` (see the module doc).
    far_symbols: BTreeMap<u32, Groups>,
    /// Chunks of the file read so far (the file's chunks `0..known_chunks`).
    pub(crate) known_chunks: u64,
    /// Groups allocated, over all symbols.
    groups: usize,
}

impl ChunkDirectory {
    /// The chunk `(symbol, chunk_idx)`, if this process has read it.
    #[inline]
    pub(crate) fn get(&self, symbol: u32, chunk_idx: u32) -> Option<ChunkAddr> {
        let groups = match self.by_symbol.get(symbol as usize) {
            Some(g) => g,
            None => self.far_symbols.get(&symbol)?,
        };
        groups.get(&(chunk_idx / GROUP as u32))?[chunk_idx as usize % GROUP]
    }

    /// The groups of `symbol`, made if it has none.
    fn groups_mut(&mut self, symbol: u32) -> &mut Groups {
        let s = symbol as usize;
        if s >= self.by_symbol.len() && s < self.by_symbol.len().saturating_mul(2).saturating_add(DENSE_SLACK) {
            self.by_symbol.resize_with(s + 1, BTreeMap::new);
            // Far symbols the table now covers move into it.
            let moved: Vec<u32> = self.far_symbols.range(..=symbol).map(|(id, _)| *id).collect();
            for id in moved {
                if let Some(g) = self.far_symbols.remove(&id) {
                    self.by_symbol[id as usize] = g;
                }
            }
        }
        match self.by_symbol.get_mut(s) {
            Some(g) => g,
            None => self.far_symbols.entry(symbol).or_default(),
        }
    }

    /// Records a chunk; false if the directory already held one for
    /// `(symbol, chunk_idx)` (which then is not replaced).
    pub(crate) fn insert(&mut self, symbol: u32, chunk_idx: u32, addr: ChunkAddr) -> bool {
        let mut made = false;
        let group = self.groups_mut(symbol).entry(chunk_idx / GROUP as u32).or_insert_with(|| {
            made = true;
            Box::new([None; GROUP])
        });
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

    /// The groups of every symbol that has chunks, by ascending id.
    fn symbols(&self) -> impl Iterator<Item = (u32, &Groups)> + '_ {
        let dense = self.by_symbol.iter().enumerate().map(|(s, g)| (s as u32, g));
        dense.chain(self.far_symbols.iter().map(|(s, g)| (*s, g))).filter(|(_, g)| !g.is_empty())
    }

    /// The chunks in `groups`, by ascending chunk index.
    fn chunks_in(groups: &Groups) -> impl Iterator<Item = (u32, ChunkAddr)> + '_ {
        groups.iter().flat_map(|(g, group)| group.iter().enumerate().filter_map(move |(i, a)| a.map(|a| (g * GROUP as u32 + i as u32, a))))
    }

    /// The chunks of `symbol`, by ascending chunk index.
    pub(crate) fn chunks_of(&self, symbol: u32) -> impl Iterator<Item = (u32, ChunkAddr)> + '_ {
        let groups = self.by_symbol.get(symbol as usize).or_else(|| self.far_symbols.get(&symbol));
        groups.into_iter().flat_map(Self::chunks_in)
    }

    /// Every chunk: (symbol, chunk index, address), by symbol and then chunk index.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u32, u32, ChunkAddr)> + '_ {
        self.symbols().flat_map(|(s, groups)| Self::chunks_in(groups).map(move |(c, a)| (s, c, a)))
    }

    /// Symbol ids `from` and up that own at least one chunk, with their chunk counts.
    pub(crate) fn symbols_from(&self, from: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.symbols().filter(move |(s, _)| *s >= from).map(|(s, groups)| (s, Self::chunks_in(groups).count() as u64))
    }

    /// Bytes of heap the directory holds for its groups and symbol tables
    /// (B-tree nodes not counted: under one pointer per group).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let tables = (self.by_symbol.capacity() + self.far_symbols.len()) * std::mem::size_of::<Groups>();
        self.groups * std::mem::size_of::<Group>() + tables
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
        let far = (DENSE_SLACK * 4) as u32;
        assert!(d.insert(far, 7, addr(1)));
        assert!(d.insert(u32::MAX, 0, addr(2)));
        assert_eq!(d.by_symbol.len(), 0, "ids far past the table stay out of it");
        assert_eq!(d.get(far, 7), Some(addr(1)));
        assert!(!d.insert(far, 7, addr(3)), "a duplicate of a far symbol's chunk is refused");
        // Ids arriving in order grow the table past `far`: its chunks move in.
        for s in (0..=far + 1).step_by(DENSE_SLACK / 2) {
            d.insert(s, 0, addr(10 + s as usize));
        }
        assert!(d.by_symbol.len() > far as usize);
        assert!(d.far_symbols.keys().all(|&s| s as usize >= d.by_symbol.len()));
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
        assert_eq!(far.heap_bytes(), near.heap_bytes());
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
        assert_eq!(spread.chunks_of(0).count(), 1000);
    }
}

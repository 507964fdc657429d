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

use std::collections::BTreeMap;

use crate::mapping::ChunkAddr;

/// Consecutive chunk indices per group.
pub(crate) const GROUP: usize = 64;

type Group = [Option<ChunkAddr>; GROUP];

/// Published chunks of one ledger, as this process knows them.
#[derive(Default)]
pub(crate) struct ChunkDirectory {
    /// By symbol id: the groups of that symbol's chunks, by group number
    /// (chunk index / [`GROUP`]).
    by_symbol: Vec<BTreeMap<u32, Box<Group>>>,
    /// Chunks of the file read so far (the file's chunks `0..known_chunks`).
    pub(crate) known_chunks: u64,
    /// Groups allocated, over all symbols.
    groups: usize,
}

impl ChunkDirectory {
    /// The chunk `(symbol, chunk_idx)`, if this process has read it.
    #[inline]
    pub(crate) fn get(&self, symbol: u32, chunk_idx: u32) -> Option<ChunkAddr> {
        let group = self.by_symbol.get(symbol as usize)?.get(&(chunk_idx / GROUP as u32))?;
        group[chunk_idx as usize % GROUP]
    }

    /// Records a chunk; false if the directory already held one for
    /// `(symbol, chunk_idx)` (which then is not replaced).
    pub(crate) fn insert(&mut self, symbol: u32, chunk_idx: u32, addr: ChunkAddr) -> bool {
        let s = symbol as usize;
        if self.by_symbol.len() <= s {
            self.by_symbol.resize_with(s + 1, BTreeMap::new);
        }
        let groups = &mut self.groups;
        let group = self.by_symbol[s].entry(chunk_idx / GROUP as u32).or_insert_with(|| {
            *groups += 1;
            Box::new([None; GROUP])
        });
        let entry = &mut group[chunk_idx as usize % GROUP];
        if entry.is_some() {
            return false;
        }
        *entry = Some(addr);
        true
    }

    /// The chunks of `symbol`, by ascending chunk index.
    pub(crate) fn chunks_of(&self, symbol: u32) -> impl Iterator<Item = (u32, ChunkAddr)> + '_ {
        self.by_symbol.get(symbol as usize).into_iter().flat_map(|groups| {
            groups
                .iter()
                .flat_map(|(g, group)| group.iter().enumerate().filter_map(move |(i, a)| a.map(|a| (g * GROUP as u32 + i as u32, a))))
        })
    }

    /// Every chunk: (symbol, chunk index, address), by symbol and then chunk index.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u32, u32, ChunkAddr)> + '_ {
        (0..self.by_symbol.len() as u32).flat_map(move |s| self.chunks_of(s).map(move |(c, a)| (s, c, a)))
    }

    /// Symbol ids `from` and up that own at least one chunk, with their chunk counts.
    pub(crate) fn symbols_from(&self, from: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.by_symbol.iter().enumerate().skip(from as usize).filter_map(|(s, groups)| {
            let n: u64 = groups.values().map(|g| g.iter().filter(|a| a.is_some()).count() as u64).sum();
            (n > 0).then_some((s as u32, n))
        })
    }

    /// Bytes of heap the directory holds for its groups and symbol table
    /// (B-tree nodes not counted: under one pointer per group).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.groups * std::mem::size_of::<Group>() + self.by_symbol.capacity() * std::mem::size_of::<BTreeMap<u32, Box<Group>>>()
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
    fn memory_follows_the_chunks_that_exist_not_their_window() {
        // One chunk at the last chunk index of a 2^32-window schedule costs
        // what one chunk at index 0 costs.
        let mut near = ChunkDirectory::default();
        near.insert(0, 0, addr(1));
        let mut far = ChunkDirectory::default();
        far.insert(0, u32::MAX / 146, addr(1));
        assert_eq!(far.heap_bytes(), near.heap_bytes());
        assert!(far.heap_bytes() < 4096, "{} bytes for one chunk", far.heap_bytes());
        // A thousand chunks spread one per group cost a thousand groups.
        let mut spread = ChunkDirectory::default();
        for i in 0..1000u32 {
            spread.insert(0, i * 100_000, addr(i as usize));
        }
        assert_eq!(spread.groups, 1000);
        assert_eq!(spread.chunks_of(0).count(), 1000);
    }
}

//! Building a secondary index once, for the records stored before it
//! existed: a release that adds an index (the orders by seller, the items
//! by seller) writes it with each new record, and at start-up fills it in
//! for the old ones, a chunk at a time, until a marker says it is complete.

use std::ops::Bound;
use std::sync::Arc;

use super::{StorageError, Store, TreeName};

/// The key in an index saying every stored record is indexed. It sorts
/// before any owner's entries (ids are never empty) and goes with the tree:
/// an index that is missing or wiped has no marker either.
pub const INDEX_COMPLETE: &[u8] = b"\0complete";

/// How many records one backfill step reads (and indexes in one write).
const CHUNK: usize = 512;

/// The index keys of one stored record (its key and bytes); a record that
/// cannot be read gives none (the caller logs it).
pub type KeysOf = dyn Fn(&[u8], &[u8]) -> Vec<Vec<u8>> + Send + Sync;

/// Indexes every record of `sources` into `index` (by `keys_of`, each
/// entry with an empty value), unless the index says it is complete;
/// returns how many records it read.
///
/// Costs one scan of the sources, once. Writing an entry twice is
/// harmless, so records written while this runs need no care.
pub async fn backfill(
    store: &Store,
    index: TreeName,
    sources: &[TreeName],
    keys_of: Arc<KeysOf>,
) -> Result<usize, StorageError> {
    let complete = store
        .read(move |trees| Ok(trees.tree(index).contains_key(INDEX_COMPLETE)?))
        .await?;
    if complete {
        return Ok(0);
    }
    let mut read = 0;
    for &source in sources {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.take();
            let keys_of = keys_of.clone();
            let (entries, last, count) = store
                .read(move |trees| next_chunk(trees, source, from, &*keys_of))
                .await?;
            read += count;
            if !entries.is_empty() {
                store
                    .write(move |tx| {
                        for key in &entries {
                            tx.put_raw(index, key.clone(), Vec::new());
                        }
                        Ok::<_, StorageError>(())
                    })
                    .await?;
            }
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    store
        .write(move |tx| {
            tx.put_raw(index, INDEX_COMPLETE, Vec::new());
            Ok::<_, StorageError>(())
        })
        .await?;
    Ok(read)
}

/// Index entries, the last key read if there may be more, and how many
/// records were read.
type Chunk = (Vec<Vec<u8>>, Option<Vec<u8>>, usize);

/// The [`Chunk`] of up to [`CHUNK`] records of `tree` after the key `after`.
fn next_chunk(
    trees: &super::Trees,
    tree: TreeName,
    after: Option<Vec<u8>>,
    keys_of: &KeysOf,
) -> Result<Chunk, StorageError> {
    let start = match after {
        Some(key) => Bound::Excluded(key),
        None => Bound::Unbounded,
    };
    let mut entries = Vec::new();
    let mut last = None;
    let mut count = 0;
    for entry in trees
        .tree(tree)
        .range::<Vec<u8>, _>((start, Bound::Unbounded))
        .take(CHUNK)
    {
        let (key, bytes) = entry?;
        entries.extend(keys_of(&key, &bytes));
        last = Some(key.to_vec());
        count += 1;
    }
    let more = count == CHUNK;
    Ok((entries, last.filter(|_| more), count))
}

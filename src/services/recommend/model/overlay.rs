//! A batch's view of the recommender's tree: reads see the batch's own
//! staged writes, and one event's writes can be undone alone.

use std::collections::{HashMap, HashSet};

use crate::storage::StorageError;

/// Reads and staged writes of one batch.
pub trait Kv {
    /// The value under `key`, including this batch's own writes.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stages `value` under `key`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    /// Stages the removal of `key`.
    fn remove(&mut self, key: Vec<u8>);
    /// Writes staged so far.
    fn staged(&self) -> usize;
    /// Starts one event's writes (so they can be undone alone).
    fn begin(&mut self);
    /// Drops the writes staged since [`Self::begin`].
    fn undo(&mut self);
    /// Notes that `item`'s ranking keys lag its popularity (for [`super::rerank`]).
    fn defer(&mut self, item: &str);
}

/// A batch's net writes by key (`None` removes).
pub type Writes = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// A key's state in the overlay before an event touched it.
type Prior = (Vec<u8>, Option<Option<Vec<u8>>>);

/// A [`Kv`] that buffers a batch's writes in memory (reads see them) over
/// a reader of the stored values; [`Self::into_writes`] hands them over.
pub struct Overlay<R> {
    read: R,
    writes: Writes,
    journal: Vec<Prior>,
    deferred: HashSet<String>,
}

impl<R> Overlay<R>
where
    R: FnMut(&[u8]) -> Result<Option<Vec<u8>>, StorageError>,
{
    /// An empty batch over `read`.
    pub fn new(read: R) -> Self {
        Overlay {
            read,
            writes: HashMap::new(),
            journal: Vec::new(),
            deferred: HashSet::new(),
        }
    }

    /// The batch's net writes (`None` removes), and the items whose
    /// ranking keys it left behind their popularity.
    pub fn into_writes(self) -> (Writes, HashSet<String>) {
        (self.writes, self.deferred)
    }
}

impl<R> Kv for Overlay<R>
where
    R: FnMut(&[u8]) -> Result<Option<Vec<u8>>, StorageError>,
{
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => (self.read)(key),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let prior = self.writes.insert(key.clone(), Some(value));
        self.journal.push((key, prior));
    }

    fn remove(&mut self, key: Vec<u8>) {
        let prior = self.writes.insert(key.clone(), None);
        self.journal.push((key, prior));
    }

    fn staged(&self) -> usize {
        self.writes.len()
    }

    fn begin(&mut self) {
        self.journal.clear();
    }

    fn undo(&mut self) {
        while let Some((key, prior)) = self.journal.pop() {
            match prior {
                Some(value) => self.writes.insert(key, value),
                None => self.writes.remove(&key),
            };
        }
    }

    fn defer(&mut self, item: &str) {
        if !self.deferred.contains(item) {
            self.deferred.insert(item.to_owned());
        }
    }
}

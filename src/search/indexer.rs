//! The indexer: the only writer of the index, an actor fed from the event
//! log by [`super::feeder`].
//!
//! The feeder reads the log after the index's own offset and hands each
//! batch to the actor, which applies it to tantivy's writer (an upsert or a
//! delete per item event; a re-index when a `stock.changed` flips an item's
//! in-stock flag). Commits are debounced: the first change after a commit
//! schedules the next one `commit_every` later (250 ms by default), so a
//! change is searchable within that plus the commit. The log offset is the
//! commit's payload, written atomically with what was indexed: after a crash
//! the index resumes exactly after its last commit and re-applies the rest
//! (applying an event twice gives the same document). If the actor fails,
//! the feeder starts a new one from the last commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tantivy::{IndexWriter, Term};

use super::documents::{stocked, upsert, Payload};
use super::index::Shared;
use super::schema::SCHEMA_VERSION;
use crate::domain::event::{Event, EventBody};
use crate::domain::item::{Item, ItemStatus};
use crate::storage::{StorageError, Store, TreeName};

/// Memory for tantivy's indexing buffer.
const WRITER_HEAP: usize = 64 * 1024 * 1024;
/// Items whose in-stock flag the indexer remembers (the most recently
/// changed): a hot SKU's stream of stock changes costs no document.
const FLAGS_KEPT: usize = 65_536;
/// When only the offset moved (events that change no document), commit
/// this rarely: it saves re-reading them after a restart, nothing more.
const OFFSET_ONLY_COMMIT: Duration = Duration::from_secs(5);

/// Messages of the indexer.
pub(super) enum IndexerMsg {
    /// Apply these events (answered once applied, not committed).
    Apply(Vec<Event>, RpcReplyPort<()>),
    /// Commit what was applied (the debounce timer).
    Commit,
    /// Commit now and answer (shutdown, tests).
    Flush(RpcReplyPort<Result<(), String>>),
}

// With the `cluster` feature every message type must say whether it can
// cross nodes; the indexer is node-local.
impl ractor::Message for IndexerMsg {}

pub(super) struct IndexerActor {
    shared: Arc<Shared>,
    store: Store,
    commit_every: Duration,
}

pub(super) struct IndexerState {
    writer: Option<IndexWriter>,
    /// Last event applied.
    applied: u64,
    /// Last event committed.
    committed: u64,
    /// Documents changed since the last commit.
    dirty: bool,
    /// When the earliest pending commit timer fires.
    due: Option<Instant>,
    /// Item id → the in-stock flag its document holds, for the items
    /// changed last ([`FLAGS_KEPT`]). An item not here is read and its
    /// document written again on its next stock change: one extra
    /// document, where an unbounded map cost ~100 MiB at 1M items.
    in_stock: quick_cache::unsync::Cache<String, bool>,
}

impl Actor for IndexerActor {
    type Msg = IndexerMsg;
    type State = IndexerState;
    type Arguments = u64;

    async fn pre_start(
        &self,
        _myself: ActorRef<IndexerMsg>,
        committed: u64,
    ) -> Result<IndexerState, ActorProcessingErr> {
        // Taking the writer locks the index and starts threads: off the
        // async workers.
        let index = self.shared.index.clone();
        let writer =
            tokio::task::spawn_blocking(move || index.writer_with_num_threads(1, WRITER_HEAP))
                .await??;
        Ok(IndexerState {
            writer: Some(writer),
            applied: committed,
            committed,
            dirty: false,
            due: None,
            in_stock: quick_cache::unsync::Cache::new(FLAGS_KEPT),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<IndexerMsg>,
        state: &mut IndexerState,
    ) -> Result<(), ActorProcessingErr> {
        // Dropping the writer joins its threads (which may be finishing a
        // segment): off the async workers too.
        if let Some(writer) = state.writer.take() {
            tokio::task::spawn_blocking(move || drop(writer)).await?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<IndexerMsg>,
        message: IndexerMsg,
        state: &mut IndexerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            IndexerMsg::Apply(events, reply) => {
                let facts = self.facts(state, &events).await?;
                for event in events {
                    if event.seq <= state.applied {
                        continue;
                    }
                    state.dirty |= self.apply(state, &facts, &event.body)?;
                    state.applied = event.seq;
                }
                let _ = reply.send(());
                if state.applied > state.committed {
                    // A document change must not wait behind a timer set
                    // for an offset-only commit: schedule an earlier one.
                    let wait = if state.dirty {
                        self.commit_every
                    } else {
                        OFFSET_ONLY_COMMIT
                    };
                    let at = Instant::now() + wait;
                    if state.due.is_none_or(|due| due > at) {
                        state.due = Some(at);
                        myself.send_after(wait, || IndexerMsg::Commit);
                    }
                }
            }
            IndexerMsg::Commit => {
                // A superseded timer may fire too: committing early is harmless.
                state.due = None;
                self.commit(state).await?;
            }
            IndexerMsg::Flush(reply) => {
                let result = self.commit(state).await;
                let _ = reply.send(result.as_ref().map(drop).map_err(|e| e.to_string()));
                result?;
            }
        }
        Ok(())
    }
}

impl IndexerActor {
    pub(super) fn new(shared: Arc<Shared>, store: Store, commit_every: Duration) -> Self {
        IndexerActor {
            shared,
            store,
            commit_every,
        }
    }

    /// What applying `events` needs to know, read in one pass on the
    /// blocking pool (not a cache lookup and a thread hop per item): each
    /// touched item's current record and whether any variant has stock.
    async fn facts(
        &self,
        state: &IndexerState,
        events: &[Event],
    ) -> Result<HashMap<String, Fact>, StorageError> {
        // (item id, the item if the event carries it, one variant's stock
        // if the event reports it)
        let mut wanted: Vec<Wanted> = Vec::new();
        for event in events.iter().filter(|e| e.seq > state.applied) {
            match &event.body {
                EventBody::ItemCreated(item) | EventBody::ItemUpdated(item)
                    if item.status == ItemStatus::Active =>
                {
                    wanted.push((item.id.clone(), Some(item.clone()), None));
                }
                // A flag already on that stays on needs nothing. The
                // changed variant's stock comes from the event (durable),
                // not from the tree, which may hold a change a crash could
                // still undo.
                EventBody::StockChanged {
                    item_id,
                    variant_id,
                    available,
                    ..
                } if !(state.in_stock.get(item_id.as_str()) == Some(&true) && *available > 0) => {
                    wanted.push((
                        item_id.clone(),
                        None,
                        Some((variant_id.clone(), *available)),
                    ));
                }
                _ => {}
            }
        }
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        self.store
            .read(move |trees| {
                let mut facts = HashMap::with_capacity(wanted.len());
                for (id, item, known) in wanted {
                    let item = match item {
                        Some(item) => Some(item),
                        None => trees.get::<Item>(TreeName::Items, id.as_bytes())?,
                    };
                    let stocked = match &item {
                        Some(item) => stocked(trees, item, known.as_ref())?,
                        None => false,
                    };
                    facts.insert(id, Fact { item, stocked });
                }
                Ok(facts)
            })
            .await
    }

    /// Applies one event; true if a document changed.
    fn apply(
        &self,
        state: &mut IndexerState,
        facts: &HashMap<String, Fact>,
        body: &EventBody,
    ) -> Result<bool, ActorProcessingErr> {
        let writer = state.writer.as_ref().ok_or("the writer is gone")?;
        let fields = &self.shared.fields;
        match body {
            EventBody::ItemCreated(item) | EventBody::ItemUpdated(item) => {
                if item.status == ItemStatus::Active {
                    let stocked = facts.get(&item.id).is_some_and(|f| f.stocked);
                    upsert(writer, fields, item, stocked)?;
                    state.in_stock.insert(item.id.clone(), stocked);
                } else {
                    writer.delete_term(Term::from_field_text(fields.id, &item.id));
                    state.in_stock.remove(item.id.as_str());
                }
                Ok(true)
            }
            EventBody::ItemDeactivated(item) => {
                writer.delete_term(Term::from_field_text(fields.id, &item.id));
                state.in_stock.remove(item.id.as_str());
                Ok(true)
            }
            EventBody::StockChanged { item_id, .. } => {
                // Only a flip of the flag touches the index: a hot SKU's
                // stream of changes costs no document.
                let Some(Fact {
                    item: Some(item),
                    stocked,
                }) = facts.get(item_id)
                else {
                    return Ok(false);
                };
                if item.status != ItemStatus::Active
                    || state.in_stock.get(item_id.as_str()) == Some(stocked)
                {
                    return Ok(false);
                }
                upsert(writer, fields, item, *stocked)?;
                state.in_stock.insert(item.id.clone(), *stocked);
                Ok(true)
            }
            EventBody::OrderUpdated { .. } | EventBody::WishlistAdded { .. } => Ok(false),
        }
    }

    /// Commits what was applied, with the offset as payload; then readers
    /// see it.
    async fn commit(&self, state: &mut IndexerState) -> Result<(), ActorProcessingErr> {
        if state.applied == state.committed && !state.dirty {
            return Ok(());
        }
        let mut writer = state.writer.take().ok_or("the writer is gone")?;
        let payload = serde_json::to_string(&Payload {
            schema: SCHEMA_VERSION,
            offset: state.applied,
        })?;
        let shared = self.shared.clone();
        // Readers reload (a new generation) only when documents changed:
        // offset-only commits must not churn the snapshots cursors pin.
        let changed = state.dirty;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = (|| -> tantivy::Result<()> {
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(&payload);
                prepared.commit()?;
                if changed {
                    shared.reload()?;
                }
                Ok(())
            })();
            (writer, result)
        })
        .await?;
        state.writer = Some(writer);
        result?;
        state.committed = state.applied;
        state.dirty = false;
        self.shared.indexed.send_replace(state.committed);
        Ok(())
    }
}

/// An item whose facts a batch needs: see [`IndexerActor::facts`].
type Wanted = (String, Option<Item>, Option<(String, i64)>);

/// What the indexer needs to know about one item.
pub(super) struct Fact {
    /// Its current record (`None`: unknown item).
    item: Option<Item>,
    /// Whether any variant has stock.
    stocked: bool,
}

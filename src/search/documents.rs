//! What the index holds and how an item becomes its document: the commit
//! payload (schema and log offset), the in-stock flag read from storage,
//! the upsert, and the full rebuild from the items. Shared by the index
//! (which rebuilds when its schema is stale) and the indexer (which applies
//! events), so neither imports the other for them.

use tantivy::{IndexWriter, Term};

use super::schema::{Fields, SCHEMA_VERSION};
use crate::domain::item::{Item, ItemStatus};
use crate::domain::stock::{SkuStock, StockReplica};
use crate::storage::{StorageError, TreeName, Trees};

/// The commit payload: what the index holds.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Payload {
    /// [`SCHEMA_VERSION`] of the documents.
    pub schema: u32,
    /// Every event up to this sequence number is applied.
    pub offset: u64,
}

/// Replaces the document of `item` (delete by id, then add).
pub(super) fn upsert(
    writer: &IndexWriter,
    fields: &Fields,
    item: &Item,
    in_stock: bool,
) -> tantivy::Result<()> {
    writer.delete_term(Term::from_field_text(fields.id, &item.id));
    writer.add_document(fields.document(item, in_stock))?;
    Ok(())
}

/// Whether any variant of `item` has stock; `known` is one variant's
/// available count as an event reported it.
pub(super) fn stocked(
    trees: &Trees,
    item: &Item,
    known: Option<&(String, i64)>,
) -> Result<bool, StorageError> {
    for variant in &item.variants {
        let available = match known {
            Some((id, available)) if *id == variant.id => *available,
            _ => match trees.get::<SkuStock>(TreeName::Stock, variant.id.as_bytes())? {
                Some(stock) => stock.level().available,
                // Another node's SKU: its stock as that node's events said.
                None => trees
                    .get::<StockReplica>(TreeName::StockReplicas, variant.id.as_bytes())?
                    .map_or(0, |r| r.available),
            },
        };
        if available > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Re-adds every active item (blocking; the writer must be exclusive).
/// Returns how many were indexed.
pub(super) fn rebuild(
    writer: &mut IndexWriter,
    fields: &Fields,
    trees: &Trees,
    offset: u64,
) -> Result<u64, anyhow::Error> {
    writer.delete_all_documents()?;
    let mut count = 0;
    for entry in trees.tree(TreeName::Items).iter() {
        let (_, bytes) = entry?;
        let item: Item = crate::storage::codec::decode(&bytes)?;
        if item.status != ItemStatus::Active {
            continue;
        }
        writer.add_document(fields.document(&item, stocked(trees, &item, None)?))?;
        count += 1;
    }
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&serde_json::to_string(&Payload {
        schema: SCHEMA_VERSION,
        offset,
    })?);
    prepared.commit()?;
    Ok(count)
}

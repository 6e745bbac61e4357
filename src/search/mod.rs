//! Catalog search.
//!
//! Not built yet: the search issue adds a tantivy index under the data
//! directory, written only by an indexer that consumes the item events this
//! foundation already emits (see [`crate::storage::events`]). Until then
//! `GET /items` (search) is not served; items are read by id.

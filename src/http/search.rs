//! `GET /items` (search and browse) and `GET /items/suggest`.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::page_size;
use super::AppState;
use crate::domain::item::{Item, MAX_PRICE};
use crate::domain::FieldErrors;
use crate::search::{SearchRequest, Sort};

/// Longest term accepted; longer text is cut (never refused: a search box
/// must answer whatever is pasted into it).
const MAX_TERM_CHARS: usize = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_items))
        .routes(routes!(suggest))
}

/// `GET /items` query. Fields stay text so that a bad value is a named 422
/// (`errors.minPrice`), not axum's bare 400; `#[param]` states the real type.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    /// Free text; without it the catalog is browsed.
    term: Option<String>,
    /// From the previous page's `nextCursor`.
    cursor: Option<String>,
    /// 1..=100, default 20.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    size: Option<String>,
    /// Only this category (case-insensitive).
    category: Option<String>,
    /// Only this brand (case-insensitive).
    brand: Option<String>,
    /// Lowest price, minor units.
    #[param(value_type = i64, required = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    min_price: Option<String>,
    /// Highest price, minor units; not below `minPrice` (422).
    #[param(value_type = i64, required = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    max_price: Option<String>,
    /// `true`: only items a buyer can get now.
    #[param(value_type = bool, required = false)]
    in_stock: Option<String>,
    /// `relevance` (default with a term), `price_asc`, `price_desc`, `newest` (default without).
    #[param(value_type = SortName, required = false, inline)]
    sort: Option<String>,
}

/// The orders a result list can come in (for the OpenAPI document).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum SortName {
    /// Best match first (the default with a term).
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Newest first (the default without a term).
    Newest,
}

/// An item in a result list.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemSummary {
    id: String,
    name: String,
    /// Minor units of `currency`.
    price: i64,
    currency: String,
    brand: Option<String>,
    category: Option<String>,
    /// The first image's URL.
    image: Option<String>,
    /// What a buyer can get now, across variants.
    available: i64,
    /// Relevance (only when sorted by relevance).
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

/// Counts of the matches per value.
#[derive(Serialize, ToSchema)]
pub struct Facets {
    category: BTreeMap<String, u64>,
    brand: BTreeMap<String, u64>,
}

/// A page of search results.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    items: Vec<ItemSummary>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
    /// Every match (all pages) while there are at most 10,000 (the
    /// `search_total_exact_limit` setting); past that, a lower bound.
    total: u64,
    /// Whether `total` counts every match (`false`: there are more).
    total_exact: bool,
    /// Per value, every match's count while `totalExact`; past it, the
    /// counts among the 1,000 best-ranked matches.
    facets: Facets,
}

fn price(field: &str, raw: Option<&str>, errors: &mut FieldErrors) -> Option<i64> {
    // An empty value is refused like any other non-integer, as the
    // document's `integer` says (and as `size=` always was).
    match raw?.parse::<i64>() {
        Ok(p) if (0..=MAX_PRICE).contains(&p) => Some(p),
        _ => {
            errors.add(
                field,
                format!("must be an integer in 0..={MAX_PRICE} (minor units)"),
            );
            None
        }
    }
}

fn text(raw: Option<String>) -> Option<String> {
    raw.map(|t| t.trim().chars().take(MAX_TERM_CHARS).collect::<String>())
        .filter(|t| !t.is_empty())
}

impl SearchQuery {
    fn validate(self) -> Result<SearchRequest, ApiError> {
        let mut errors = FieldErrors::new();
        let size = page_size(self.size.as_deref(), 20, 100, &mut errors);
        let min_price = price("minPrice", self.min_price.as_deref(), &mut errors);
        let max_price = price("maxPrice", self.max_price.as_deref(), &mut errors);
        if let (Some(low), Some(high)) = (min_price, max_price) {
            if low > high {
                errors.add("maxPrice", "must not be below minPrice");
            }
        }
        let in_stock = match self.in_stock.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                errors.add("inStock", "must be true or false");
                false
            }
        };
        let sort = match self.sort.as_deref() {
            None => None,
            Some(raw) => {
                let parsed = Sort::parse(raw);
                if parsed.is_none() {
                    errors.add(
                        "sort",
                        "must be one of relevance, price_asc, price_desc, newest",
                    );
                }
                parsed
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(SearchRequest {
            term: text(self.term),
            category: text(self.category),
            brand: text(self.brand),
            min_price,
            max_price,
            in_stock,
            sort,
            size,
            cursor: self.cursor.filter(|c| !c.is_empty()),
        })
    }
}

/// The design's search: free text with filters, sort, facets and cursor
/// pages; without a term, browsing.
#[utoipa::path(get, path = "/items", tag = "catalog", params(SearchQuery),
    responses(
        (status = 200, body = SearchPage),
        (status = 400, body = Problem, description = "INVALID_CURSOR, or MALFORMED_REQUEST (a repeated query parameter)", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "size, price, sort or inStock out of range", content_type = "application/problem+json"),
    ))]
async fn search_items(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<axum::Json<SearchPage>, ApiError> {
    let request = query.validate()?;
    let page = state.search.search(request).await?;
    let items = summarize_live(&state, page.hits).await?;
    Ok(axum::Json(SearchPage {
        items,
        next_cursor: page.next_cursor,
        total: page.total,
        total_exact: page.total_exact,
        facets: Facets {
            category: page.categories.into_iter().collect(),
            brand: page.brands.into_iter().collect(),
        },
    }))
}

/// The summaries of the listed items still for sale, in order, with their
/// live availability: the index may trail the catalog by a moment, and an
/// item withdrawn since is left out rather than shown for sale. Two batched
/// reads (the items, then their stock), whatever the page's length.
pub(super) async fn summarize_live(
    state: &AppState,
    hits: Vec<(String, Option<f32>)>,
) -> Result<Vec<ItemSummary>, ApiError> {
    let ids: Vec<String> = hits.iter().map(|(id, _)| id.clone()).collect();
    let items = state.catalog.items_for_sale(&ids).await?;
    let live: Vec<(Item, Option<f32>)> = items
        .into_iter()
        .zip(hits)
        .filter_map(|(item, (_, score))| Some((item?, score)))
        .collect();
    let variants = live
        .iter()
        .flat_map(|(item, _)| item.variants.iter().map(|v| v.id.clone()))
        .collect();
    let mut levels = state.catalog.levels(variants).await?.into_iter();
    Ok(live
        .into_iter()
        .map(|(item, score)| {
            let available = levels
                .by_ref()
                .take(item.variants.len())
                .map(|l| l.available)
                .sum();
            ItemSummary::new(item, available, score)
        })
        .collect())
}

impl ItemSummary {
    /// The summary of `item` with `available` units.
    pub(super) fn new(item: Item, available: i64, score: Option<f32>) -> Self {
        ItemSummary {
            image: item.images.first().map(|key| format!("/media/{key}")),
            id: item.id,
            name: item.name,
            price: item.price,
            currency: item.currency,
            brand: item.brand,
            category: item.category,
            available,
            score,
        }
    }
}

/// `GET /items/suggest` query.
#[derive(Deserialize, IntoParams)]
pub struct SuggestQuery {
    /// What the buyer has typed so far.
    q: Option<String>,
    /// 1..=20, default 8.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 20)]
    size: Option<String>,
}

/// Completions.
#[derive(Serialize, ToSchema)]
pub struct Suggestions {
    /// Item names (lower-case), best match first.
    suggestions: Vec<String>,
}

/// Autocomplete from item names: the typed words, the last one as a prefix.
#[utoipa::path(get, path = "/items/suggest", tag = "catalog", params(SuggestQuery),
    responses(
        (status = 200, body = Suggestions),
        (status = 400, body = Problem, description = "MALFORMED_REQUEST: a repeated query parameter", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "size out of range", content_type = "application/problem+json"),
    ))]
async fn suggest(
    State(state): State<AppState>,
    Query(query): Query<SuggestQuery>,
) -> Result<axum::Json<Suggestions>, ApiError> {
    let mut errors = FieldErrors::new();
    let size = page_size(query.size.as_deref(), 8, 20, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let Some(prefix) = text(query.q) else {
        return Ok(axum::Json(Suggestions {
            suggestions: Vec::new(),
        }));
    };
    // More hits than suggestions: several items may share a name.
    let ids = state.search.complete(prefix, size * 4).await?;
    let mut seen = HashSet::new();
    let mut suggestions = Vec::new();
    // Items withdrawn since they were indexed are left out.
    let items = state.catalog.items_for_sale(&ids).await?;
    for item in items.into_iter().flatten() {
        let name = item.name.to_lowercase();
        if seen.insert(name.clone()) {
            suggestions.push(name);
            if suggestions.len() == size {
                break;
            }
        }
    }
    Ok(axum::Json(Suggestions { suggestions }))
}

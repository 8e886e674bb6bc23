//! List queries: the filter language checked against a collection's schema and compiled to
//! parameterised SQL (or evaluated in memory), plus the `sort`, `fields`, `expand` and
//! paging parameters. Every user-supplied name is checked against the schema; every value
//! is bound.

pub mod filter;
mod metadata;
mod params;

pub use filter::MAX_FILTER_COST;
pub use filter::RequestContext;
pub(crate) use filter::{Compiled, Lookup, Source, check};
pub use params::ListParams;
pub(crate) use params::{SortKey, parse_expand, parse_fields, parse_sort};

//! List queries: the filter language compiled to parameterised SQL against a collection's
//! schema, plus the `sort`, `fields`, `expand` and paging parameters. Every user-supplied
//! name is checked against the schema; every value is bound.

mod filter;
mod metadata;
mod params;

pub use filter::MAX_FILTER_COST;
pub use filter::RequestContext;
pub(crate) use filter::{Compiled, Lookup, Source, compile_filter};
pub use params::ListParams;
pub(crate) use params::{SortKey, parse_expand, parse_fields, parse_sort};

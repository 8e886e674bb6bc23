//! Brigade's shared vocabulary. No IO beyond reading settings, no HTTP, no SQL.
//!
//! # Layout
//! - [`filter`]: the filter/rule language (lexer, parser, AST, printer).

pub mod filter;

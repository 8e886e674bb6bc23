//! The OpenAPI 3.1 document of the live API, collections included. It is rebuilt from the
//! schema cache on each request (cheap), so it always matches the current collections.
//! Written as JSON directly: every path of a collection is generated from runtime data.
//!
//! It is built for its reader ([`Audience`]): anonymous callers and ordinary users do not
//! learn of collections they can neither list nor view (both rules superuser-only), of the
//! operations whose rule is superuser-only, nor of the superuser-only routes (schema
//! changes, search documents). Superusers see everything.
//!
//! Every operation declares every status it can answer with (see [`op::Op`]), and the
//! document is checked against the router's own table of routes ([`crate::route_table`]).

mod definitions;
mod op;
mod pipelines;
mod projection;
mod realtime;
mod records;
mod search;
mod system;

use std::collections::HashSet;
use std::sync::Arc;

use brigade_core::schema::Collection;
use serde_json::{Map, Value, json};

/// Who reads the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Every collection, operation and route.
    Superuser,
    /// Anonymous callers and users without the `admin` role: what rules may let them do.
    Public,
}

/// Whether `audience` may learn of collection `c`: a rule other than superuser-only
/// (`null`) on list or view.
pub(crate) fn shows(audience: Audience, c: &Collection) -> bool {
    audience == Audience::Superuser || c.rules.list.is_some() || c.rules.view.is_some()
}

/// The OpenAPI document for `collections` and search `indexes`, as `audience` may see it
/// (`indexes` are already the ones it may see).
pub(crate) fn document(
    collections: &[Arc<Collection>],
    indexes: &[String],
    audience: Audience,
) -> Value {
    let superuser = audience == Audience::Superuser;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), op::problem_schema());
    crate::views::schemas(&mut schemas);
    let hidden: HashSet<&str> = collections
        .iter()
        .filter(|c| !shows(audience, c))
        .map(|c| c.name.as_str())
        .collect();
    let find = |name: &str| collections.iter().find(|c| c.name == name).cloned();
    for c in collections
        .iter()
        .filter(|c| !hidden.contains(c.name.as_str()))
    {
        records::add(&mut paths, &mut schemas, c, &find, &hidden, superuser);
    }
    system::auth(&mut paths);
    system::batch(&mut paths);
    system::operations(&mut paths);
    if superuser {
        system::admin(&mut paths);
        system::schema(&mut paths);
        system::schemas(&mut schemas);
        pipelines::add(&mut paths, &mut schemas);
    }
    pipelines::tables(&mut paths, &mut schemas);
    search::add(&mut paths, &mut schemas, indexes, superuser);
    realtime::add(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Brigade", "version": env!("CARGO_PKG_VERSION"),
            "description": "Collections, records, auth and operations of this Brigade app. Errors are RFC 9457 problem+json with a stable `code`."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": op::security_schemes()
        },
        "security": [{"bearer": []}, {"apiKey": []}]
    })
}

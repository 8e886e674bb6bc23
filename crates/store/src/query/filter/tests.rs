//! Tests of the check (errors and their positions, plan shape, cost) and of the SQL emitter's
//! text; the in-memory evaluator is tested in `eval_tests.rs` and, against both databases, by
//! the property test in the integration tests (`filter_props`).

use std::sync::Arc;

use brigade_core::schema::Collection;
use brigade_core::value::Value;
use serde_json::json;

use super::*;
use crate::error::StoreError;
use crate::sql::Dialect;

fn collection(name: &str, fields: serde_json::Value, view: Option<&str>) -> Arc<Collection> {
    Arc::new(
        serde_json::from_value(json!({
            "id": format!("c_{name}"), "name": name, "fields": fields,
            "rules": {"list": view, "view": view},
            "created": "", "updated": ""
        }))
        .unwrap(),
    )
}

fn schema() -> Vec<Arc<Collection>> {
    vec![
        collection(
            "posts",
            json!([
                {"id": "f1", "name": "title", "type": "text"},
                {"id": "f2", "name": "vault", "type": "relation", "options": {"collection": "vault"}},
                {"id": "f3", "name": "profile", "type": "relation", "options": {"collection": "profiles"}}
            ]),
            Some(""),
        ),
        collection(
            "vault",
            json!([{"id": "f4", "name": "secret", "type": "text"}]),
            None,
        ),
        collection(
            "profiles",
            json!([{"id": "f5", "name": "owner", "type": "text"}]),
            Some("owner = @request.auth.id"),
        ),
    ]
}

fn plan_in(schema: &[Arc<Collection>], source: &str, kind: Source<'_>) -> Result<Plan, StoreError> {
    let lookup = |name: &str| schema.iter().find(|c| c.name == name).cloned();
    let expr = brigade_core::filter::parse(source).unwrap();
    check(&schema[0], &lookup, source, &expr, kind, None)
}

fn plan(source: &str, kind: Source<'_>) -> Result<Plan, StoreError> {
    plan_in(&schema(), source, kind)
}

fn compile(source: &str, kind: Source<'_>) -> Result<Sql, StoreError> {
    plan(source, kind).map(|p| sql::emit(Dialect::Sqlite, &p))
}

fn scans(source: &str) -> bool {
    plan(source, Source::Filter(&Access::Superuser))
        .unwrap()
        .scans()
}

#[test]
fn substring_matches_and_relation_steps_are_scans() {
    assert!(!scans("title = 'a' && title != 'b'"));
    assert!(scans("title ~ 'a'"));
    assert!(scans("profile.owner = 'u1'"));
}

fn caller(id: Option<&str>) -> Access {
    let mut ctx = RequestContext::default();
    if let Some(id) = id {
        ctx.auth.insert("id".into(), json!(id));
    }
    Access::Caller(ctx)
}

#[test]
fn a_callers_walk_carries_the_targets_view_rule() {
    let sql = compile("profile.owner ~ 'x'", Source::Filter(&caller(Some("u1")))).unwrap();
    assert_eq!(
        sql.text,
        "\"profile\" IN (SELECT \"id\" FROM \"profiles\" WHERE \"owner\" LIKE ?1 ESCAPE '\\' \
         AND (\"owner\" = ?2))"
    );
    assert!(matches!(&sql.params[1], Value::Text(id) if id == "u1"));
    // Anonymous callers have no id: the walk matches nothing.
    let sql = compile("profile.owner ~ 'x'", Source::Filter(&Access::anonymous())).unwrap();
    assert!(sql.text.ends_with("AND (1 = 0))"), "{}", sql.text);
    // Superusers and rules walk freely.
    let sql = compile("vault.secret = 'x'", Source::Filter(&Access::Superuser)).unwrap();
    assert!(!sql.text.contains(" AND "), "{}", sql.text);
    let rule = RequestContext::default();
    let sql = compile("vault.secret = 'x'", Source::Rule(&rule)).unwrap();
    assert!(!sql.text.contains(" AND "), "{}", sql.text);
}

#[test]
fn a_walk_into_a_superuser_only_collection_is_refused() {
    let err = compile("vault.secret >= 'P'", Source::Filter(&caller(Some("u1")))).unwrap_err();
    assert!(err.to_string().contains("only superusers"), "{err}");
}

#[test]
fn absent_request_values_match_nothing_but_null() {
    let nobody = RequestContext::default();
    let sql = compile("title = @request.auth.id", Source::Rule(&nobody)).unwrap();
    assert_eq!(sql.text, "1 = 0");
    let sql = compile("title != @request.auth.id", Source::Rule(&nobody)).unwrap();
    assert_eq!(sql.text, "1 = 0");
    let sql = compile("@request.body.title = null", Source::Rule(&nobody)).unwrap();
    assert_eq!(sql.text, "1 = 1");
    let sql = compile("@request.body.title != null", Source::Rule(&nobody)).unwrap();
    assert_eq!(sql.text, "1 = 0");
    let mut null_id = RequestContext::default();
    null_id.auth.insert("id".into(), serde_json::Value::Null);
    let sql = compile("title = @request.auth.id", Source::Rule(&null_id)).unwrap();
    assert_eq!(sql.text, "1 = 0");
    // The field is still checked.
    assert!(compile("titel = @request.auth.id", Source::Rule(&nobody)).is_err());
    // The literal null still means IS NULL.
    let sql = compile("title = null", Source::Rule(&nobody)).unwrap();
    assert_eq!(sql.text, "\"title\" IS NULL");
}

#[test]
fn non_superusers_filters_have_a_cost_budget() {
    let contains = |n: usize| {
        (0..n)
            .map(|i| format!("title ~ 'w{i}'"))
            .collect::<Vec<_>>()
            .join(" || ")
    };
    let user = caller(Some("u1"));
    assert!(compile(&contains(20), Source::Filter(&user)).is_ok());
    let err = compile(&contains(21), Source::Filter(&user)).unwrap_err();
    assert!(err.to_string().contains("costs 105"), "{err}");
    assert!(compile(&contains(21), Source::Filter(&Access::Superuser)).is_ok());
    // Each relation step costs more than a comparison.
    let walks = (0..10)
        .map(|i| format!("profile.owner = 'u{i}'"))
        .collect::<Vec<_>>()
        .join(" || ");
    let err = compile(&walks, Source::Filter(&user)).unwrap_err();
    assert!(err.to_string().contains("costs 110"), "{err}");
}

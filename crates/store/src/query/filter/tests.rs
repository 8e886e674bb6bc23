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

/// A collection of every field type, plus relations to `people` (view rule: own records).
fn typed_schema() -> Vec<Arc<Collection>> {
    vec![
        collection(
            "items",
            json!([
                {"id": "g1", "name": "title", "type": "text"},
                {"id": "g2", "name": "count", "type": "integer"},
                {"id": "g3", "name": "score", "type": "number"},
                {"id": "g4", "name": "done", "type": "bool"},
                {"id": "g5", "name": "due", "type": "datetime"},
                {"id": "g6", "name": "extra", "type": "json"},
                {"id": "g7", "name": "owner", "type": "relation", "options": {"collection": "people"}},
                {"id": "g8", "name": "label", "type": "text"},
                {"id": "g9", "name": "author", "type": "relation", "options": {"collection": "users"}}
            ]),
            Some(""),
        ),
        collection(
            "people",
            json!([
                {"id": "h1", "name": "name", "type": "text"},
                {"id": "h2", "name": "boss", "type": "relation", "options": {"collection": "people"}}
            ]),
            Some("id = @request.auth.id"),
        ),
    ]
}

fn typed(source: &str, kind: Source<'_>) -> Result<Plan, StoreError> {
    plan_in(&typed_schema(), source, kind)
}

fn typed_error(source: &str) -> String {
    match typed(source, Source::Filter(&Access::Superuser)) {
        Ok(plan) => panic!("{source:?} checked: {plan:?}"),
        Err(e) => e.to_string(),
    }
}

fn col(name: &str, kind: brigade_core::schema::FieldType) -> Column {
    Column {
        name: crate::sql::Ident::parse(name).unwrap(),
        kind,
    }
}

#[test]
fn check_errors_name_the_operand_and_its_char_position() {
    let cases = [
        (
            "nope = 1",
            "at position 0: unknown field `nope` in collection `items`",
        ),
        (
            "title = 'é' && count = 'x'",
            "at position 23: `count` is an integer field; compare it with a number",
        ),
        (
            "score > true",
            "at position 8: `score` is a number field; compare it with a number",
        ),
        (
            "done = 1",
            "at position 7: `done` is a bool field; compare it with true or false",
        ),
        (
            "due < 'yesterday'",
            "at position 6: `due` is a datetime field; compare it with a date-time such as \
             '2026-01-31T12:00:00Z' or @now",
        ),
        (
            "title = 3",
            "at position 8: `title` is a text field; compare it with a quoted string",
        ),
        (
            "extra = 'x'",
            "at position 0: `extra` is a json field; only `= null`, `!= null`, `~` and `!~` apply",
        ),
        (
            "title > null",
            "at position 8: null can only be compared with = or !=",
        ),
        (
            "title ~ 'a' || done !~ 't'",
            "at position 15: `!~` compares text, and `done` is a bool field; compare it with \
             =, !=, <, <=, > or >=",
        ),
        (
            "score ~ 1.5",
            "at position 0: `~` compares text, and `score` is a number field; compare it with \
             =, !=, <, <=, > or >=",
        ),
        (
            "'x' ~ title",
            "at position 0: put the field on the left of `~` and `!~`",
        ),
        (
            "count = title",
            "at position 8: cannot compare `count` with `title` using =",
        ),
        (
            "title ~ label",
            "at position 8: cannot compare `title` with `label` using ~",
        ),
        (
            "owner.name = label",
            "at position 0: comparing two fields works only on fields of the same record",
        ),
        (
            "title.name = 'x'",
            "at position 0: `title` is not a relation field, so `title.name` cannot be followed",
        ),
        (
            "owner.boss.boss.boss.name = 'x'",
            "at position 0: relations can be followed at most 3 levels deep",
        ),
        (
            "author.email = 'a@example.com'",
            "at position 0: `author` points at accounts, whose fields filters cannot follow; \
             compare the account id instead, e.g. `author = @request.auth.id` in a rule or \
             `author = 'ID'`",
        ),
        (
            "owner.nope = 'x'",
            "at position 0: unknown field `nope` in collection `people`",
        ),
        (
            "title = @request.auth.id",
            "at position 8: `@request` can only be used in collection rules",
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(
            typed_error(source),
            format!("invalid input: filter: {expected}"),
            "{source}"
        );
    }
}

#[test]
fn plans_type_their_literals() {
    use brigade_core::schema::FieldType as T;
    let superuser = Access::Superuser;
    let p = |source: &str| typed(source, Source::Filter(&superuser)).unwrap().node;
    assert_eq!(
        p("count >= 2"),
        Node::Compare {
            column: col("count", T::Integer),
            op: Order::Ge,
            value: Scalar::Int(2)
        }
    );
    // An integer against a number field is a float; a float against an integer field too.
    assert_eq!(
        p("2 < score"),
        Node::Compare {
            column: col("score", T::Number),
            op: Order::Gt,
            value: Scalar::Float(2.0)
        }
    );
    assert_eq!(
        p("count != 1.5"),
        Node::Compare {
            column: col("count", T::Integer),
            op: Order::Ne,
            value: Scalar::Float(1.5)
        }
    );
    // Date-times are normalized.
    let Node::Compare {
        value: Scalar::Text(due),
        ..
    } = p("due = '2026-01-31T12:00:00+01:00'")
    else {
        panic!("not a comparison");
    };
    assert_eq!(
        Some(due.clone()),
        brigade_core::time::normalize_datetime("2026-01-31T11:00:00Z")
    );
    assert_eq!(
        p("extra != null"),
        Node::Null {
            column: col("extra", T::Json),
            is_null: false
        }
    );
    assert_eq!(
        p("title !~ '50%'"),
        Node::Contains {
            column: col("title", T::Text),
            needle: "50%".into(),
            negated: true
        }
    );
    assert_eq!(
        p("1 = 1 || 'a' > 'b'"),
        Node::Or(Box::new(Node::Const(true)), Box::new(Node::Const(false)))
    );
}

#[test]
fn a_callers_walk_plans_the_targets_view_rule() {
    use brigade_core::schema::FieldType as T;
    let user = caller(Some("u1"));
    let plan = typed("owner.name = 'Ada'", Source::Filter(&user)).unwrap();
    let Node::Walk {
        column,
        target,
        inner,
        visible,
        ..
    } = plan.node()
    else {
        panic!("not a walk: {plan:?}");
    };
    assert_eq!(column, &col("owner", T::Relation));
    assert_eq!(target.name, "people");
    assert_eq!(
        **inner,
        Node::Compare {
            column: col("name", T::Text),
            op: Order::Eq,
            value: Scalar::Text("Ada".into())
        }
    );
    assert_eq!(
        visible.as_deref(),
        Some(&Node::Compare {
            column: col("id", T::Text),
            op: Order::Eq,
            value: Scalar::Text("u1".into())
        })
    );
    assert_eq!(plan.cost(), 11);
    assert!(plan.scans());
    // Rules walk without the target's view rule.
    let plan = typed(
        "owner.name = 'Ada'",
        Source::Rule(&RequestContext::default()),
    )
    .unwrap();
    assert!(matches!(plan.node(), Node::Walk { visible: None, .. }));
}

#[test]
fn request_values_are_substituted() {
    use brigade_core::schema::FieldType as T;
    let mut ctx = RequestContext::default();
    ctx.auth.insert("id".into(), json!("u1"));
    ctx.auth.insert("roles".into(), json!(["a", 7, null]));
    ctx.body.insert("count".into(), json!("not a number"));
    let p = |source: &str| typed(source, Source::Rule(&ctx)).unwrap().node;
    assert_eq!(
        p("owner = @request.auth.id"),
        Node::Compare {
            column: col("owner", T::Relation),
            op: Order::Eq,
            value: Scalar::Text("u1".into())
        }
    );
    // A value of the wrong type from the caller is false, not an error.
    assert_eq!(p("count = @request.body.count"), Node::Const(false));
    // Lists: `=` any element (elements of the wrong type never match), `!=` all; nulls dropped.
    assert_eq!(
        p("title = @request.auth.roles"),
        Node::Any(vec![
            Node::Compare {
                column: col("title", T::Text),
                op: Order::Eq,
                value: Scalar::Text("a".into())
            },
            Node::Const(false),
        ])
    );
    assert!(matches!(p("title != @request.auth.roles"), Node::All(items) if items.len() == 2));
    assert_eq!(p("@request.auth.roles = 'a'"), Node::Const(true));
    assert_eq!(p("@request.auth.missing = null"), Node::Const(true));
    assert_eq!(p("@request.auth.missing != null"), Node::Const(false));
}

mod eval {
    //! The evaluator on hand-written records; the property test in the integration tests
    //! compares it with both databases.

    use std::collections::HashMap;

    use async_trait::async_trait;

    use super::*;
    use crate::records::Record;

    struct Records(HashMap<(String, String), Record>);

    #[async_trait]
    impl Related for Records {
        async fn related(
            &self,
            collection: &Collection,
            id: &str,
        ) -> Result<Option<Record>, StoreError> {
            Ok(self
                .0
                .get(&(collection.name.clone(), id.to_owned()))
                .cloned())
        }
    }

    fn record(value: serde_json::Value) -> Record {
        match value {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn people() -> Records {
        let mut map = HashMap::new();
        for (id, name, boss) in [("u1", "Ada", None), ("u2", "Bob", Some("u1"))] {
            let rec = record(json!({"id": id, "name": name, "boss": boss}));
            map.insert(("people".to_owned(), id.to_owned()), rec);
        }
        Records(map)
    }

    fn matches(source: &str, access: &Access, rec: &serde_json::Value) -> bool {
        let plan = typed(source, Source::Filter(access)).unwrap();
        let rec = record(rec.clone());
        futures::executor::block_on(plan.matches(&rec, &people())).unwrap()
    }

    fn su(source: &str, rec: serde_json::Value) -> bool {
        matches(source, &Access::Superuser, &rec)
    }

    #[test]
    fn nulls_match_only_not_equal_and_is_null() {
        let empty = json!({"id": "r1", "title": null});
        assert!(su("title = null", empty.clone()));
        assert!(su("count = null", empty.clone()));
        assert!(!su("title != null", empty.clone()));
        assert!(su("title != 'x'", empty.clone()));
        assert!(su("title !~ 'x'", empty.clone()));
        assert!(!su("title = 'x'", empty.clone()));
        assert!(!su("title ~ ''", empty.clone()));
        assert!(!su("count < 5", empty.clone()));
        assert!(!su("count >= 5", empty.clone()));
        assert!(!su("title = label", empty.clone()));
        assert!(!su("title != label", empty.clone()));
        assert!(su("title != label", json!({"title": "a"})));
        assert!(!su("owner.name = 'Ada'", empty));
    }

    #[test]
    fn contains_ignores_ascii_case_only_and_wildcards() {
        let rec = json!({"title": "Ünï 50% OFF_now"});
        assert!(su("title ~ 'off_'", rec.clone()));
        assert!(su("title ~ '50%'", rec.clone()));
        assert!(!su("title ~ '5%0'", rec.clone()));
        assert!(!su("title ~ 'o_f'", rec.clone()));
        assert!(su("title ~ 'Ünï'", rec.clone()));
        assert!(!su("title ~ 'ünï'", rec.clone()));
        assert!(su("title !~ 'x'", rec.clone()));
        assert!(!su("title !~ 'now'", rec));
        assert!(su("count ~ 12", json!({"count": 3120})));
    }

    #[test]
    fn numbers_text_bools_and_datetimes_compare_as_sql_does() {
        let rec = json!({"count": 3, "score": 2.5, "done": true, "title": "b",
                         "due": "2026-01-31T12:00:00.000Z", "label": "B"});
        assert!(su(
            "count = 3 && count < 3.5 && count > 2.9 && count != 3.0001",
            rec.clone()
        ));
        assert!(su("score > 2 && score = 2.5 && score <= 2.5", rec.clone()));
        assert!(su("count > score && score < count", rec.clone()));
        assert!(su(
            "done = true && done != false && done > false",
            rec.clone()
        ));
        assert!(su("title > label", rec.clone()));
        assert!(su(
            "title = 'b' && title < 'c' && title >= 'b'",
            rec.clone()
        ));
        assert!(su(
            "due > '2026-01-31T11:59:59Z' && due = '2026-01-31T12:00:00Z'",
            rec.clone()
        ));
        assert!(su("due < @now", rec));
    }

    #[test]
    fn walks_load_the_target_and_apply_its_view_rule() {
        let rec = json!({"id": "r1", "owner": "u2"});
        assert!(su("owner.name = 'Bob'", rec.clone()));
        assert!(su("owner.boss.name = 'Ada'", rec.clone()));
        assert!(!su("owner.boss.boss.name = 'Ada'", rec.clone()));
        assert!(!su("owner.name = 'Ada'", rec.clone()));
        // Callers see through the walk only people they may view (their own record).
        assert!(matches("owner.name = 'Bob'", &caller(Some("u2")), &rec));
        assert!(!matches("owner.name = 'Bob'", &caller(Some("u1")), &rec));
        // A dangling id matches nothing.
        assert!(!su("owner.name != 'x'", json!({"owner": "u9"})));
    }

    #[test]
    fn rules_with_request_lists() {
        let mut ctx = RequestContext::default();
        ctx.auth.insert("roles".into(), json!(["x", "y"]));
        let plan = typed("title = @request.auth.roles", Source::Rule(&ctx)).unwrap();
        let eval = |title: &str| {
            let rec = record(json!({ "title": title }));
            futures::executor::block_on(plan.matches(&rec, &NoRelated)).unwrap()
        };
        assert!(eval("y"));
        assert!(!eval("z"));
    }
}

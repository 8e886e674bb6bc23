//! The filter language's two back ends agree: for random records and random filters and
//! rules, the ids a list request returns (SQL, on SQLite and on PostgreSQL) are the ids the
//! in-memory evaluator matches (`Plan::matches`, what realtime uses).
//!
//! The store is used directly (no server): each case creates its own pair of collections,
//! `people_N` (a view rule hiding some people from callers) and `items_N` (every field type,
//! a relation to `people_N`, a random list rule using `@request`), fills them, and compares
//! both back ends for each of a few random filters, as a superuser and as a caller. Filters
//! come from a generator over the syntax tree, printed as source.
//!
//! Not generated, because the two databases disagree with each other there (see
//! `query::filter::eval`): `~` on json fields (`~` on number and bool fields is a 400 from the
//! checker). Nor is a json field set to
//! JSON `null` (SQL tells it from an unset field, a record does not).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brigade_core::filter::{CmpOp, Expr, Literal, Operand, Span};
use brigade_store::query::filter::Related;
use brigade_store::query::{ListParams, RequestContext};
use brigade_store::{Access, RuleOp, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value as Json, json};

use crate::helpers::Backend;

/// Random cases per backend; each runs [`FILTERS`] filters twice (superuser and caller).
const CASES: u32 = 48;
const FILTERS: usize = 6;

/// Texts are made of these pieces, so that `~` needles often hit and every escape matters.
const PIECES: &[&str] = &["a", "A", "b", "%", "_", "\\", "'", "é", "É", "a_b", "z"];

const DATES: &[&str] = &[
    "2020-01-01T00:00:00.000Z",
    "2024-02-29T12:30:00.000Z",
    "2024-02-29T12:30:00.500Z",
    "2031-12-31T23:59:59.999Z",
];

/// Date-time literals, some in other formats that normalize onto [`DATES`].
const DATE_LITERALS: &[&str] = &[
    "2020-01-01T00:00:00Z",
    "2020-01-01",
    "2024-02-29T13:30:00+01:00",
    "2024-02-29 12:30:00.5",
    "2027-06-01T00:00:00Z",
    "2031-12-31T23:59:59.999Z",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Integer,
    Number,
    Bool,
    Datetime,
    Json,
    Relation,
}

/// The fields of `items_N` (and `people_N` for relation steps).
const ITEM_FIELDS: &[(&str, Kind)] = &[
    ("title", Kind::Text),
    ("label", Kind::Text),
    ("count", Kind::Integer),
    ("score", Kind::Number),
    ("done", Kind::Bool),
    ("due", Kind::Datetime),
    ("extra", Kind::Json),
    ("owner", Kind::Relation),
];
const PEOPLE_FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("rank", Kind::Integer),
    ("boss", Kind::Relation),
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..4).prop_map(|p| p.concat())
}

fn maybe<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 4 => s.prop_map(Some)]
}

/// A value for a field of `kind` as a create body holds it; relations are an index into
/// the people created first.
fn value(kind: Kind) -> BoxedStrategy<Json> {
    let s: BoxedStrategy<Json> = match kind {
        Kind::Text => text().prop_map(Json::from).boxed(),
        Kind::Integer => (-3i64..4).prop_map(Json::from).boxed(),
        Kind::Number => prop::sample::select(&[-1.5, 0.0, 0.1, 2.0, 2.5, 3.0][..])
            .prop_map(Json::from)
            .boxed(),
        Kind::Bool => any::<bool>().prop_map(Json::from).boxed(),
        Kind::Datetime => prop::sample::select(DATES).prop_map(Json::from).boxed(),
        Kind::Json => prop_oneof![
            Just(json!({"a": 1})),
            Just(json!([1, "x"])),
            Just(json!("a")),
            Just(json!(3)),
        ]
        .boxed(),
        Kind::Relation => (0usize..4).prop_map(|i| json!(i)).boxed(),
    };
    maybe(s).prop_map(|v| v.unwrap_or(Json::Null)).boxed()
}

fn record(fields: &'static [(&'static str, Kind)]) -> impl Strategy<Value = Map<String, Json>> {
    let values: Vec<_> = fields.iter().map(|&(_, kind)| value(kind)).collect();
    values.prop_map(move |values| {
        fields
            .iter()
            .zip(values)
            .map(|(&(name, _), v)| (name.to_owned(), v))
            .collect()
    })
}

fn field(path: &[&str]) -> Operand {
    Operand::Field {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        span: Span::default(),
    }
}

fn lit(value: Literal) -> Operand {
    Operand::Literal {
        value,
        span: Span::default(),
    }
}

fn request(path: &[&str]) -> Operand {
    Operand::Request {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        span: Span::default(),
    }
}

/// A literal that fits `kind` most of the time (and sometimes not, which both back ends
/// must refuse alike).
fn literal(kind: Kind) -> BoxedStrategy<Literal> {
    let fitting: BoxedStrategy<Literal> = match kind {
        Kind::Text | Kind::Relation => text().prop_map(Literal::Str).boxed(),
        Kind::Integer => prop_oneof![
            (-3i64..4).prop_map(Literal::Int),
            prop::sample::select(&[-0.5, 1.5, 2.0][..]).prop_map(Literal::Float),
        ]
        .boxed(),
        Kind::Number => prop_oneof![
            (-3i64..4).prop_map(Literal::Int),
            prop::sample::select(&[-1.5, 0.1, 2.5, 2.9][..]).prop_map(Literal::Float),
        ]
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(Literal::Bool).boxed(),
        Kind::Datetime => prop::sample::select(DATE_LITERALS)
            .prop_map(|s| Literal::Str(s.to_owned()))
            .boxed(),
        Kind::Json => Just(Literal::Null).boxed(),
    };
    prop_oneof![
        12 => fitting,
        2 => Just(Literal::Null),
        1 => prop_oneof![
            Just(Literal::Int(1)),
            Just(Literal::Str("x".into())),
            Just(Literal::Bool(true))
        ],
    ]
    .boxed()
}

/// An operator that applies to `kind`: no `~` on number and bool fields (refused by the
/// checker) nor on json fields (where SQLite and PostgreSQL disagree with each other).
fn op(kind: Kind) -> BoxedStrategy<CmpOp> {
    let all = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Like,
        CmpOp::NotLike,
    ];
    let ops: Vec<CmpOp> = match kind {
        Kind::Number | Kind::Bool => all[..6].to_vec(),
        Kind::Json => vec![CmpOp::Eq, CmpOp::Ne],
        _ => all.to_vec(),
    };
    prop::sample::select(ops).boxed()
}

/// A comparison on a field of `items` (or through `owner` into `people`), with a literal,
/// another field of the same kind, or (in rules) an `@request` value.
fn comparison(rules: bool) -> BoxedStrategy<Expr> {
    let own = prop::sample::select(ITEM_FIELDS).prop_map(|(name, kind)| (vec![name], kind));
    let walk = prop_oneof![
        prop::sample::select(PEOPLE_FIELDS).prop_map(|(name, kind)| (vec!["owner", name], kind)),
        prop::sample::select(PEOPLE_FIELDS)
            .prop_map(|(name, kind)| (vec!["owner", "boss", name], kind)),
    ];
    let path = prop_oneof![4 => own, 1 => walk];
    path.prop_flat_map(move |(path, kind)| {
        let same_kind: Vec<&str> = ITEM_FIELDS
            .iter()
            .filter(|(_, k)| *k == kind || (kind == Kind::Relation && *k == Kind::Text))
            .map(|(n, _)| *n)
            .collect();
        let mut right: Vec<(u32, BoxedStrategy<Operand>)> =
            vec![(10, literal(kind).prop_map(lit).boxed())];
        if path.len() == 1 && kind != Kind::Json {
            let fields = prop::sample::select(same_kind).prop_map(|n| field(&[n]));
            right.push((2, fields.boxed()));
        }
        if kind == Kind::Datetime {
            right.push((
                1,
                Just(Operand::Now {
                    span: Span::default(),
                })
                .boxed(),
            ));
        }
        if rules {
            let requests = prop::sample::select(vec![
                vec!["auth", "id"],
                vec!["auth", "roles"],
                vec!["auth", "missing"],
                vec!["body", "title"],
            ])
            .prop_map(|p| request(&p));
            right.push((4, requests.boxed()));
        }
        let right = prop::strategy::Union::new_weighted(right);
        let path = path.clone();
        (op(kind), right, any::<bool>()).prop_map(move |(op, right, flip)| {
            let left = field(&path);
            let flippable = !matches!(op, CmpOp::Like | CmpOp::NotLike)
                && matches!(right, Operand::Literal { .. } | Operand::Request { .. });
            if flip && flippable {
                let op = match op {
                    CmpOp::Gt => CmpOp::Lt,
                    CmpOp::Ge => CmpOp::Le,
                    CmpOp::Lt => CmpOp::Gt,
                    CmpOp::Le => CmpOp::Ge,
                    other => other,
                };
                Expr::Cmp {
                    left: right,
                    op,
                    right: left,
                }
            } else {
                Expr::Cmp { left, op, right }
            }
        })
    })
    .boxed()
}

fn expr(rules: bool) -> impl Strategy<Value = Expr> {
    comparison(rules).prop_recursive(3, 6, 2, |inner| {
        (inner.clone(), inner, any::<bool>()).prop_map(|(l, r, and)| {
            if and {
                Expr::And(Box::new(l), Box::new(r))
            } else {
                Expr::Or(Box::new(l), Box::new(r))
            }
        })
    })
}

#[derive(Debug, Clone)]
struct Case {
    people: Vec<Map<String, Json>>,
    items: Vec<Map<String, Json>>,
    /// The list rule of `items_N`.
    rule: Expr,
    filters: Vec<Expr>,
    /// Which person the caller is (`None`: anonymous).
    caller: Option<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(record(PEOPLE_FIELDS), 4),
        prop::collection::vec(record(ITEM_FIELDS), 0..10),
        expr(true),
        prop::collection::vec(expr(false), FILTERS),
        maybe(0usize..4),
    )
        .prop_map(|(people, items, rule, filters, caller)| Case {
            people,
            items,
            rule,
            filters,
            caller,
        })
}

/// `~` and `!~` on texts that differ only in non-ASCII case or in wildcards.
fn fixed_case() -> Case {
    let titles = ["É", "é", "ü", "Ü", "50%", "5x0", "a_b", "axb", "A\\b", "'"];
    let items = titles
        .iter()
        .map(|t| {
            let mut rec = Map::new();
            rec.insert("title".into(), json!(t));
            rec
        })
        .collect();
    let filters = ["é", "É", "ü", "%", "50%", "_", "a_b", "\\", "a", "'"]
        .iter()
        .flat_map(|needle| {
            [CmpOp::Like, CmpOp::NotLike].map(|op| Expr::Cmp {
                left: field(&["title"]),
                op,
                right: lit(Literal::Str((*needle).to_owned())),
            })
        })
        .collect();
    Case {
        people: vec![Map::new(); 4],
        items,
        rule: Expr::Cmp {
            left: field(&["title"]),
            op: CmpOp::Ne,
            right: lit(Literal::Null),
        },
        filters,
        caller: None,
    }
}

static COLLECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Creates the case's collections and records; returns the items collection's name and the
/// caller.
async fn load(store: &Store, case: &Case) -> Result<(String, Access), TestCaseError> {
    let n = COLLECTIONS.fetch_add(1, Ordering::Relaxed);
    let (people, items) = (format!("people_{n}"), format!("items_{n}"));
    let fields = |list: &[(&str, Kind)]| -> Vec<Json> {
        list.iter()
            .map(|&(name, kind)| match kind {
                Kind::Relation if name == "boss" => json!({"name": name, "type": "relation",
                    "options": {"collection": people}}),
                Kind::Relation => json!({"name": name, "type": "relation",
                    "options": {"collection": people}}),
                other => json!({"name": name, "type": format!("{other:?}").to_lowercase()}),
            })
            .collect()
    };
    // Callers see people other than `z…` and themselves.
    let view = "name !~ 'z' || id = @request.auth.id";
    store
        .create_collection(&json!({"name": people, "fields": fields(PEOPLE_FIELDS),
            "rules": {"list": view, "view": view}}))
        .await
        .map_err(|e| TestCaseError::fail(format!("people: {e}")))?;
    let mut ids: Vec<String> = Vec::new();
    for person in &case.people {
        let mut body = person.clone();
        let boss = body.remove("boss").and_then(|b| b.as_u64());
        if let Some(boss) = boss.and_then(|b| ids.get(b as usize)) {
            body.insert("boss".into(), json!(boss));
        }
        let created = store
            .create_record(&people, &body, &Access::Superuser)
            .await
            .map_err(|e| TestCaseError::fail(format!("person {body:?}: {e}")))?;
        ids.push(created["id"].as_str().unwrap_or_default().to_owned());
    }
    let rule = case.rule.to_string();
    match store
        .create_collection(&json!({"name": items, "fields": fields(ITEM_FIELDS),
            "rules": {"list": rule, "view": ""}}))
        .await
    {
        Ok(_) => {}
        // A rule that does not check (a literal of the wrong type): no rule, then.
        Err(brigade_store::StoreError::Invalid(_)) => {
            store
                .create_collection(&json!({"name": items, "fields": fields(ITEM_FIELDS),
                    "rules": {"list": "", "view": ""}}))
                .await
                .map_err(|e| TestCaseError::fail(format!("items: {e}")))?;
        }
        Err(e) => return Err(TestCaseError::fail(format!("items with rule {rule}: {e}"))),
    }
    for item in &case.items {
        let mut body = item.clone();
        // An explicit JSON `null` in a json field is stored as the JSON value `null`, which
        // SQL's `= null` does not match but a record cannot tell from an unset field (see
        // `query::filter::eval`); leave the field unset instead.
        if body.get("extra").is_some_and(Json::is_null) {
            body.remove("extra");
        }
        let owner = body.remove("owner").and_then(|o| o.as_u64());
        if let Some(owner) = owner.and_then(|o| ids.get(o as usize)) {
            body.insert("owner".into(), json!(owner));
        }
        store
            .create_record(&items, &body, &Access::Superuser)
            .await
            .map_err(|e| TestCaseError::fail(format!("item {body:?}: {e}")))?;
    }
    let mut ctx = RequestContext::default();
    if let Some(id) = case.caller.and_then(|c| ids.get(c)) {
        ctx.auth.insert("id".into(), json!(id));
        ctx.auth.insert("roles".into(), json!(["a", "%", 3, null]));
    }
    ctx.body.insert("title".into(), json!("a"));
    Ok((items, Access::Caller(ctx)))
}

async fn all_records(store: &Store, name: &str) -> Vec<brigade_store::Record> {
    let params = ListParams {
        per_page: Some("500".into()),
        ..ListParams::default()
    };
    store
        .list_records(name, &params, &Access::Superuser)
        .await
        .expect("list every record")
        .items
}

/// Ids from SQL, or the error message.
async fn sql_ids(
    store: &Store,
    name: &str,
    filter: &str,
    access: &Access,
) -> Result<BTreeSet<String>, String> {
    let params = ListParams {
        filter: Some(filter.to_owned()),
        per_page: Some("500".into()),
        ..ListParams::default()
    };
    let page = store
        .list_records(name, &params, access)
        .await
        .map_err(|e| e.to_string())?;
    Ok(page.items.iter().map(id_of).collect())
}

/// Ids from the evaluator (filter and list rule), or the error message.
async fn eval_ids(
    store: &Store,
    name: &str,
    filter: &str,
    access: &Access,
    records: &[brigade_store::Record],
) -> Result<BTreeSet<String>, String> {
    let filter = store
        .filter_plan(name, filter, access)
        .map_err(|e| e.to_string())?;
    let rule = store
        .rule_plan(name, RuleOp::List, access, None)
        .map_err(|e| e.to_string())?;
    let related: &dyn Related = store;
    let mut ids = BTreeSet::new();
    for rec in records {
        let mut keep = filter
            .matches(rec, related)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(rule) = &rule {
            keep = keep
                && rule
                    .matches(rec, related)
                    .await
                    .map_err(|e| e.to_string())?;
        }
        if keep {
            ids.insert(id_of(rec));
        }
    }
    Ok(ids)
}

fn id_of(rec: &brigade_store::Record) -> String {
    rec["id"].as_str().unwrap_or_default().to_owned()
}

async fn run_case(store: &Store, case: &Case) -> Result<usize, TestCaseError> {
    let (items, caller) = load(store, case).await?;
    let records = all_records(store, &items).await;
    let mut compared = 0;
    for filter in &case.filters {
        let source = filter.to_string();
        for access in [&Access::Superuser, &caller] {
            let sql = sql_ids(store, &items, &source, access).await;
            let eval = eval_ids(store, &items, &source, access, &records).await;
            prop_assert_eq!(
                &sql,
                &eval,
                "filter {} as {:?}\nrule: {}\nrecords: {:#?}",
                source,
                access,
                case.rule,
                records
            );
            compared += usize::from(sql.is_ok());
        }
    }
    Ok(compared)
}

/// Runs the property on `backend`; `false` when PostgreSQL is skipped.
async fn run(backend: Backend) -> bool {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let Some(url) = backend.fresh_database_url(dir.path()).await else {
        return false;
    };
    let store: Arc<Store> = Arc::new(
        Store::connect(&url, &dir.path().join("migrations"))
            .await
            .expect("the store"),
    );
    // Cases the generator finds only rarely: case folding beyond ASCII and the escapes.
    let fixed = fixed_case();
    if let Err(e) = run_case(&store, &fixed).await {
        panic!("{backend:?}: SQL and the evaluator disagree: {e}");
    }
    let handle = tokio::runtime::Handle::current();
    let compared = std::sync::atomic::AtomicUsize::new(0);
    let config = Config {
        cases: CASES,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config)
            .run(&case(), |case| {
                let n = handle.block_on(run_case(&store, &case))?;
                compared.fetch_add(n, Ordering::Relaxed);
                Ok(())
            })
            .map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        panic!("{backend:?}: SQL and the evaluator disagree: {e}");
    }
    // The generator must mostly produce filters that check, or the property says little.
    let compared = compared.load(Ordering::Relaxed);
    let total = CASES as usize * FILTERS * 2;
    assert!(
        compared * 2 > total,
        "only {compared} of {total} filters checked"
    );
    eprintln!("{backend:?}: SQL and the evaluator agreed on {compared} of {total} filters");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_evaluator_agree_on_sqlite() {
    assert!(run(Backend::Sqlite).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_evaluator_agree_on_postgres() {
    // `false`: skipped, with the harness's warning already printed.
    run(Backend::Postgres).await;
}

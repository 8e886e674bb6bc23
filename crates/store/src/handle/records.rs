//! Record reads and writes: validation against the schema, the collection rules of the
//! caller ([`Access`]), one transaction per call (or per batch), change events after commit.

use brigade_core::schema::Collection;
use brigade_core::schema::input::{Mode, validate_record};
use serde_json::{Map, Value as Json};

use super::{BatchOp, BatchOutcome, Page, Store};
use crate::access::{Access, RuleOp, rule_for};
use crate::changes::{self, Change, ChangeKind};
use crate::conn::Conn;
use crate::error::StoreError;
use crate::event_log::{EventKind, NewEvent};
use crate::query::{ListParams, parse_expand, parse_fields, parse_sort};
use crate::records::{self, Record};
use crate::sql::Sql;

impl Store {
    fn rule(
        &self,
        c: &Collection,
        op: RuleOp,
        access: &Access,
        body: Option<&Map<String, Json>>,
    ) -> Result<Option<Sql>, StoreError> {
        let lookup = self.lookup();
        rule_for(self.dialect(), c, op, access, &lookup, body)
    }

    /// The view rule per collection for `expand`; hidden collections yield `None`.
    fn view_rules(
        &self,
        access: &Access,
    ) -> impl Fn(&Collection) -> Option<Option<Sql>> + Send + Sync + use<> {
        let dialect = self.dialect();
        let lookup = self.lookup();
        let access = access.clone();
        move |c: &Collection| rule_for(dialect, c, RuleOp::View, &access, &lookup, None).ok()
    }

    /// Lists records of `name` that the caller's list rule allows.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for bad parameters, [`StoreError::CollectionNotFound`],
    /// [`StoreError::Forbidden`] when the list rule is superusers-only.
    pub async fn list_records(
        &self,
        name: &str,
        params: &ListParams,
        access: &Access,
    ) -> Result<Page, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        let rule = self.rule(&c, RuleOp::List, access, None)?;
        let (page, per_page, skip_total) = params.paging()?;
        let sort = parse_sort(&c, params.sort.as_deref())?;
        let fields = parse_fields(&c, params.fields.as_deref())?;
        let expand = parse_expand(&c, &lookup, params.expand.as_deref())?;
        let dialect = self.dialect();
        let filter = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(src) => Some(records::filter_sql(
                dialect, &c, src, &lookup, access, None,
            )?),
            None => None,
        };
        let heavy = filter.as_ref().is_some_and(|f| f.scans);
        let filter = filter.map(|f| f.sql);
        let filter = match (filter, rule) {
            (None, None) => None,
            (Some(f), None) | (None, Some(f)) => Some(f),
            (Some(f), Some(r)) => {
                let mut both = Sql::new(dialect);
                both.push("(").append(f).push(") AND (").append(r).push(")");
                Some(both)
            }
        };
        // Held until the page and its total are read.
        let _heavy = match &self.heavy_reads {
            Some(lane) if heavy => Some(
                lane.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::unavailable("the store is closing"))?,
            ),
            _ => None,
        };
        let mut conn = self.db.read().await?;
        let count_key =
            (!skip_total).then(|| super::counts::CountCache::key(&c.name, filter.as_ref()));
        let version = self.counts.version();
        let (mut items, _) = records::list(
            conn.as_mut(),
            &c,
            filter.clone(),
            &sort,
            page,
            per_page,
            false,
        )
        .await?;
        let total = match count_key {
            None => None,
            Some(key) => match self.counts.get(&key) {
                Some(n) => Some(n),
                None => {
                    let n = records::count(conn.as_mut(), &c, filter).await?;
                    self.counts.put(key, version, n);
                    Some(n)
                }
            },
        };
        if !expand.is_empty() {
            let view_rules = self.view_rules(access);
            records::expand(
                conn.as_mut(),
                &c,
                &mut items,
                &expand,
                &lookup,
                &view_rules,
                access,
            )
            .await?;
        }
        if let Some(fields) = &fields {
            items.iter_mut().for_each(|r| records::project(r, fields));
        }
        Ok(Page {
            items,
            page,
            per_page,
            total_items: total,
            total_pages: total.map(|t| (t + per_page - 1) / per_page),
        })
    }

    /// Reads one record the caller's view rule allows (404 otherwise, so hidden records do
    /// not reveal that they exist).
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`], [`StoreError::Invalid`] for bad `fields`/`expand`,
    /// [`StoreError::Forbidden`] when the view rule is superusers-only.
    pub async fn get_record(
        &self,
        name: &str,
        id: &str,
        fields: Option<&str>,
        expand: Option<&str>,
        access: &Access,
    ) -> Result<Record, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        let rule = self.rule(&c, RuleOp::View, access, None)?;
        let fields = parse_fields(&c, fields)?;
        let expand = parse_expand(&c, &lookup, expand)?;
        if !brigade_core::ids::is_plausible_id(id) {
            return Err(records::not_found(&c, id));
        }
        let mut conn = self.db.read().await?;
        let mut rec = records::get(conn.as_mut(), &c, id, rule).await?;
        if !expand.is_empty() {
            let view_rules = self.view_rules(access);
            records::expand(
                conn.as_mut(),
                &c,
                std::slice::from_mut(&mut rec),
                &expand,
                &lookup,
                &view_rules,
                access,
            )
            .await?;
        }
        if let Some(fields) = &fields {
            records::project(&mut rec, fields);
        }
        Ok(rec)
    }

    /// Creates a record from an API body.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] per field, [`StoreError::Conflict`] on unique values,
    /// [`StoreError::Forbidden`] when the create rule refuses it.
    pub async fn create_record(
        &self,
        name: &str,
        body: &Map<String, Json>,
        access: &Access,
    ) -> Result<Record, StoreError> {
        let op = BatchOp::Create {
            collection: name.into(),
            body: body.clone(),
        };
        match self.write_single(op, access).await? {
            BatchOutcome::Created(r) => Ok(r),
            _ => Err(StoreError::internal("create returned no record")),
        }
    }

    /// Applies a partial update to a record the caller's update rule allows.
    ///
    /// # Errors
    /// As [`Store::create_record`], plus [`StoreError::RecordNotFound`].
    pub async fn update_record(
        &self,
        name: &str,
        id: &str,
        body: &Map<String, Json>,
        access: &Access,
    ) -> Result<Record, StoreError> {
        let op = BatchOp::Update {
            collection: name.into(),
            id: id.into(),
            body: body.clone(),
        };
        match self.write_single(op, access).await? {
            BatchOutcome::Updated(r) => Ok(r),
            _ => Err(StoreError::internal("update returned no record")),
        }
    }

    /// Deletes a record (and, through `cascade_delete` relations, its dependents).
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`]; [`StoreError::Conflict`] when still referenced.
    pub async fn delete_record(
        &self,
        name: &str,
        id: &str,
        access: &Access,
    ) -> Result<(), StoreError> {
        let op = BatchOp::Delete {
            collection: name.into(),
            id: id.into(),
        };
        self.write_single(op, access).await?;
        Ok(())
    }

    /// One write in its own transaction.
    async fn write_single(&self, op: BatchOp, access: &Access) -> Result<BatchOutcome, StoreError> {
        self.write(vec![op], access)
            .await
            .map_err(|(_, e)| e)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::internal("write returned nothing"))
    }

    /// Runs writes in one transaction: all succeed or none is kept. Each write is checked
    /// against the caller's rule for its collection.
    ///
    /// # Errors
    /// The index of the failing operation and its error.
    pub async fn write(
        &self,
        ops: Vec<BatchOp>,
        access: &Access,
    ) -> Result<Vec<BatchOutcome>, (usize, StoreError)> {
        // Validate everything and compile the rules before taking the write lock.
        let mut prepared = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let fail = |e| (i, e);
            let (name, id, rule_op, body) = match &op {
                BatchOp::Create { collection, body } => {
                    (collection, None, RuleOp::Create, Some(body))
                }
                BatchOp::Update {
                    collection,
                    id,
                    body,
                } => (collection, Some(id), RuleOp::Update, Some(body)),
                BatchOp::Delete { collection, id } => (collection, Some(id), RuleOp::Delete, None),
            };
            let c = self.collection(name).map_err(fail)?;
            if let Some(pipeline) = &c.pipeline {
                return Err(fail(StoreError::ReadOnly {
                    collection: c.name.clone(),
                    pipeline: pipeline.clone(),
                }));
            }
            let rule = self.rule(&c, rule_op, access, body).map_err(fail)?;
            if let Some(id) = id.filter(|id| !brigade_core::ids::is_plausible_id(id)) {
                return Err((i, records::not_found(&c, id)));
            }
            let input = match &op {
                BatchOp::Create { body, .. } => Some(
                    validate_record(&c, body, Mode::Create)
                        .map_err(|e| (i, StoreError::Invalid(e)))?,
                ),
                BatchOp::Update { body, .. } => Some(
                    validate_record(&c, body, Mode::Update)
                        .map_err(|e| (i, StoreError::Invalid(e)))?,
                ),
                BatchOp::Delete { .. } => None,
            };
            prepared.push((c, op, input, rule));
        }
        let job = WriteJob {
            prepared,
            access: access.clone(),
            schema: self.schema(),
            publish: self.changes.listening(),
        };
        self.group_commit.submit(job).await
    }
}

/// Validated writes of one request, ready to run inside a transaction.
pub(super) struct WriteJob {
    pub(super) prepared: Vec<Prepared>,
    pub(super) access: Access,
    pub(super) schema: crate::migrations::Schema,
    /// Whether anyone listens to the change feed (else no change is built).
    pub(super) publish: bool,
}

/// One validated write: its collection, the operation, the checked input and the rule SQL.
pub(super) type Prepared = (
    std::sync::Arc<Collection>,
    BatchOp,
    Option<brigade_core::schema::input::RecordInput>,
    Option<Sql>,
);

/// What a job wrote, besides its outcomes: the changes for the in-process feed (built only
/// when someone listens) and the events for the realtime log (always).
#[derive(Default)]
pub(super) struct Written {
    pub(super) changes: Vec<Change>,
    pub(super) events: Vec<NewEvent>,
}

/// Runs a job's writes on `conn` (inside the caller's transaction) and returns their outcomes
/// and what to log and publish.
pub(super) async fn apply_job(
    conn: &mut dyn Conn,
    job: WriteJob,
) -> Result<(Vec<BatchOutcome>, Written), (usize, StoreError)> {
    let schema = job.schema;
    let lookup = move |name: &str| schema.iter().find(|c| c.name == name).cloned();
    let mut outcomes = Vec::with_capacity(job.prepared.len());
    let mut written = Written {
        changes: Vec::with_capacity(if job.publish { job.prepared.len() } else { 0 }),
        events: Vec::with_capacity(job.prepared.len()),
    };
    for (i, (c, op, input, rule)) in job.prepared.into_iter().enumerate() {
        let (outcome, deleted) = write_one(&mut *conn, &c, op, input, rule, &job.access, &lookup)
            .await
            .map_err(|e| (i, e))?;
        let (kind, record) = match &outcome {
            BatchOutcome::Created(r) => (ChangeKind::Create, r),
            BatchOutcome::Updated(r) => (ChangeKind::Update, r),
            BatchOutcome::Deleted => (ChangeKind::Delete, deleted.as_ref().unwrap_or(&EMPTY)),
        };
        written.events.push(NewEvent {
            kind: EventKind::Record,
            topic: c.name.clone(),
            record_id: record.get("id").and_then(Json::as_str).map(String::from),
            action: kind.as_str().into(),
            body: serde_json::to_string(record).map_err(|e| {
                (
                    i,
                    StoreError::internal_from("could not encode a record for the event log", e),
                )
            })?,
        });
        if job.publish {
            written
                .changes
                .push(changes::record(&c.name, kind, record.clone()));
        }
        outcomes.push(outcome);
    }
    Ok((outcomes, written))
}

static EMPTY: std::sync::LazyLock<Record> = std::sync::LazyLock::new(Record::new);

/// One write inside the batch transaction; returns the outcome and, for deletes, the
/// deleted record.
async fn write_one(
    conn: &mut dyn Conn,
    c: &Collection,
    op: BatchOp,
    input: Option<brigade_core::schema::input::RecordInput>,
    rule: Option<Sql>,
    access: &Access,
    lookup: crate::query::Lookup<'_>,
) -> Result<(BatchOutcome, Option<Record>), StoreError> {
    match (op, input) {
        (BatchOp::Create { .. }, Some(mut input)) => {
            // The create rule is checked twice: against the record as it would be stored,
            // before the insert (so a refused caller never sees a unique or relation error
            // that reveals hidden records), and against the stored row inside the transaction
            // (so `owner = @request.auth.id` means exactly what is stored).
            let now = brigade_core::time::now();
            let id = input
                .id
                .get_or_insert_with(brigade_core::ids::new_id)
                .clone();
            let refused = || {
                access.refused(format!(
                    "the create rule of `{}` refuses this record",
                    c.name
                ))
            };
            if let Some(rule) = &rule
                && !records::would_match(conn, c, &input, &id, &now, rule.clone()).await?
            {
                return Err(refused());
            }
            let record = records::insert(conn, c, input, lookup, access, now).await?;
            // Only "not visible under the rule" is a refusal; any other error is itself.
            if let Some(rule) = rule {
                match records::get(conn, c, &id, Some(rule)).await {
                    Ok(_) => {}
                    Err(StoreError::RecordNotFound { .. }) => return Err(refused()),
                    Err(other) => return Err(other),
                }
            }
            Ok((BatchOutcome::Created(record), None))
        }
        (BatchOp::Update { id, .. }, Some(input)) => {
            records::get(conn, c, &id, rule).await?;
            Ok((
                BatchOutcome::Updated(records::update(conn, c, &id, input, lookup, access).await?),
                None,
            ))
        }
        (BatchOp::Delete { id, .. }, _) => {
            let old = records::get(conn, c, &id, rule).await?;
            records::delete(conn, c, &id).await?;
            Ok((BatchOutcome::Deleted, Some(old)))
        }
        _ => Err(StoreError::internal("batch operation without input")),
    }
}

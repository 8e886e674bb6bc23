//! Record reads and writes: validation against the schema, one transaction per call (or per
//! batch), change events after commit.

use brigade_core::schema::input::{Mode, validate_record};
use serde_json::{Map, Value as Json};

use super::{BatchOp, BatchOutcome, Page, Store};
use crate::ChangeEvent;
use crate::conn::Conn;
use crate::error::StoreError;
use crate::query::{ListParams, RequestContext, parse_expand, parse_fields, parse_sort};
use crate::records::{self, Record};

impl Store {
    // ---- records ---------------------------------------------------------------------

    /// Lists records of `name`. `rule` (a filter source) restricts the rows further.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for bad parameters, [`StoreError::CollectionNotFound`].
    pub async fn list_records(
        &self,
        name: &str,
        params: &ListParams,
        rule: Option<(&str, &RequestContext)>,
    ) -> Result<Page, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        let (page, per_page, skip_total) = params.paging()?;
        let sort = parse_sort(&c, params.sort.as_deref())?;
        let fields = parse_fields(&c, params.fields.as_deref())?;
        let expand = parse_expand(&c, &lookup, params.expand.as_deref())?;
        let dialect = self.dialect();
        let mut filter = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(src) => Some(records::filter_sql(dialect, &c, src, &lookup, None)?),
            None => None,
        };
        if let Some((rule_src, request)) = rule {
            let rule_sql = records::filter_sql(dialect, &c, rule_src, &lookup, Some(request))?;
            filter = Some(match filter {
                None => rule_sql,
                Some(f) => {
                    let mut both = crate::sql::Sql::new(dialect);
                    both.push("(")
                        .append(f)
                        .push(") AND (")
                        .append(rule_sql)
                        .push(")");
                    both
                }
            });
        }
        let mut conn = self.db.read().await?;
        let (mut items, total) = records::list(
            conn.as_mut(),
            &c,
            filter,
            &sort,
            page,
            per_page,
            !skip_total,
        )
        .await?;
        if !expand.is_empty() {
            records::expand(conn.as_mut(), &c, &mut items, &expand, &lookup).await?;
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

    /// Reads one record.
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`], [`StoreError::Invalid`] for bad `fields`/`expand`.
    pub async fn get_record(
        &self,
        name: &str,
        id: &str,
        fields: Option<&str>,
        expand: Option<&str>,
    ) -> Result<Record, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        let fields = parse_fields(&c, fields)?;
        let expand = parse_expand(&c, &lookup, expand)?;
        if !brigade_core::ids::is_plausible_id(id) {
            return Err(records::not_found(&c, id));
        }
        let mut conn = self.db.read().await?;
        let mut rec = records::get(conn.as_mut(), &c, id, None).await?;
        if !expand.is_empty() {
            records::expand(
                conn.as_mut(),
                &c,
                std::slice::from_mut(&mut rec),
                &expand,
                &lookup,
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
    /// [`StoreError::Invalid`] per field, [`StoreError::Conflict`] on unique values.
    pub async fn create_record(
        &self,
        name: &str,
        body: &Map<String, Json>,
    ) -> Result<Record, StoreError> {
        let results = self
            .write(vec![BatchOp::Create {
                collection: name.into(),
                body: body.clone(),
            }])
            .await
            .map_err(|(_, e)| e)?;
        match results.into_iter().next() {
            Some(BatchOutcome::Created(r)) => Ok(r),
            _ => Err(StoreError::Internal("create returned nothing".into())),
        }
    }

    /// Applies a partial update.
    ///
    /// # Errors
    /// As [`Store::create_record`], plus [`StoreError::RecordNotFound`].
    pub async fn update_record(
        &self,
        name: &str,
        id: &str,
        body: &Map<String, Json>,
    ) -> Result<Record, StoreError> {
        let op = BatchOp::Update {
            collection: name.into(),
            id: id.into(),
            body: body.clone(),
        };
        match self
            .write(vec![op])
            .await
            .map_err(|(_, e)| e)?
            .into_iter()
            .next()
        {
            Some(BatchOutcome::Updated(r)) => Ok(r),
            _ => Err(StoreError::Internal("update returned nothing".into())),
        }
    }

    /// Deletes a record (and, through `cascade_delete` relations, its dependents).
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`]; [`StoreError::Conflict`] when still referenced.
    pub async fn delete_record(&self, name: &str, id: &str) -> Result<(), StoreError> {
        self.write(vec![BatchOp::Delete {
            collection: name.into(),
            id: id.into(),
        }])
        .await
        .map_err(|(_, e)| e)?;
        Ok(())
    }

    /// Runs writes in one transaction: all succeed or none is kept.
    ///
    /// # Errors
    /// The index of the failing operation and its error.
    pub async fn write(&self, ops: Vec<BatchOp>) -> Result<Vec<BatchOutcome>, (usize, StoreError)> {
        let lookup = self.lookup();
        // Validate everything before taking the write lock.
        let mut prepared = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let fail = |e| (i, e);
            let (name, id) = match &op {
                BatchOp::Create { collection, .. } => (collection, None),
                BatchOp::Update { collection, id, .. } | BatchOp::Delete { collection, id } => {
                    (collection, Some(id))
                }
            };
            let c = self.collection(name).map_err(fail)?;
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
            prepared.push((c, op, input));
        }
        let mut tx = self.db.begin().await.map_err(|e| (0, e))?;
        let mut outcomes = Vec::with_capacity(prepared.len());
        let mut events = Vec::new();
        for (i, (c, op, input)) in prepared.into_iter().enumerate() {
            let conn: &mut dyn Conn = tx.as_mut();
            let outcome = match (op, input) {
                (BatchOp::Create { .. }, Some(input)) => records::insert(conn, &c, input, &lookup)
                    .await
                    .map(BatchOutcome::Created),
                (BatchOp::Update { id, .. }, Some(input)) => {
                    records::update(conn, &c, &id, input, &lookup)
                        .await
                        .map(BatchOutcome::Updated)
                }
                (BatchOp::Delete { id, .. }, _) => match records::get(conn, &c, &id, None).await {
                    Ok(old) => records::delete(conn, &c, &id).await.map(|()| {
                        events.push(ChangeEvent::new(&c.name, "delete", old));
                        BatchOutcome::Deleted
                    }),
                    Err(e) => Err(e),
                },
                _ => Err(StoreError::Internal("batch operation without input".into())),
            }
            .map_err(|e| (i, e))?;
            match &outcome {
                BatchOutcome::Created(r) => {
                    events.push(ChangeEvent::new(&c.name, "create", r.clone()))
                }
                BatchOutcome::Updated(r) => {
                    events.push(ChangeEvent::new(&c.name, "update", r.clone()))
                }
                BatchOutcome::Deleted => {}
            }
            outcomes.push(outcome);
        }
        tx.commit().await.map_err(|e| (0, e))?;
        for event in events {
            let _ = self.changes.send(event);
        }
        Ok(outcomes)
    }
}

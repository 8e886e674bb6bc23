//! `sort`, `fields`, `expand` and paging parameters of list and read requests.

use std::sync::Arc;

use brigade_core::schema::{Collection, FieldType};

use crate::error::StoreError;
use crate::query::filter::Lookup;

/// Largest page size.
pub(crate) const MAX_PER_PAGE: i64 = 500;
/// Page size when none is given.
pub(crate) const DEFAULT_PER_PAGE: i64 = 30;
const MAX_SORT_KEYS: usize = 8;
const MAX_EXPAND_DEPTH: usize = 3;

/// Raw list parameters as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub skip_total: Option<String>,
    pub fields: Option<String>,
    pub expand: Option<String>,
}

impl ListParams {
    /// `(page, per_page, skip_total)` validated. A parameter that is sent is what the
    /// OpenAPI document says it is, exactly: `page` and `per_page` whole numbers in range,
    /// `skip_total` `true` or `false`. An empty value (`?page=`) is refused rather than read
    /// as the default, so a client's mistake is not silently ignored.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] on `page`, `per_page` or `skip_total`.
    pub fn paging(&self) -> Result<(i64, i64, bool), StoreError> {
        let number =
            |key: &str, v: &Option<String>, default: i64, max: i64| -> Result<i64, StoreError> {
                let Some(s) = v.as_deref() else {
                    return Ok(default);
                };
                match s.parse::<i64>() {
                    Ok(n) if (1..=max).contains(&n) && !s.starts_with('+') => Ok(n),
                    _ => Err(StoreError::invalid(
                        key,
                        format!("must be a whole number from 1 to {max}"),
                    )),
                }
            };
        let page = number("page", &self.page, 1, 1_000_000)?;
        let per_page = number("per_page", &self.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?;
        let skip_total = match self.skip_total.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(StoreError::invalid("skip_total", "must be true or false")),
        };
        Ok((page, per_page, skip_total))
    }
}

/// One `ORDER BY` key.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    pub column: String,
    pub descending: bool,
}

/// Parses `-created,title`. `id` is appended as a tie-breaker so pages are stable.
pub(crate) fn parse_sort(c: &Collection, sort: Option<&str>) -> Result<Vec<SortKey>, StoreError> {
    let mut keys = Vec::new();
    for part in sort
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (descending, name) = match part.as_bytes()[0] {
            b'-' => (true, &part[1..]),
            b'+' => (false, &part[1..]),
            _ => (false, part),
        };
        if c.column_type(name).is_none() {
            return Err(StoreError::invalid(
                "sort",
                format!("unknown field `{name}` in collection `{}`", c.name),
            ));
        }
        if keys.iter().any(|k: &SortKey| k.column == name) {
            return Err(StoreError::invalid(
                "sort",
                format!("`{name}` appears twice"),
            ));
        }
        keys.push(SortKey {
            column: name.to_string(),
            descending,
        });
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(StoreError::invalid(
            "sort",
            format!("at most {MAX_SORT_KEYS} sort keys"),
        ));
    }
    // A unique tie-breaker makes pages stable. It follows the direction of the last key so
    // that an index on (key, id) serves the whole ORDER BY in one scan.
    if !c.system_columns {
        // A warehouse table has no key: every other orderable column breaks ties.
        let descending = keys.last().is_some_and(|k| k.descending);
        for f in &c.fields {
            if f.kind != FieldType::Json && !keys.iter().any(|k| k.column == f.name) {
                keys.push(SortKey {
                    column: f.name.clone(),
                    descending,
                });
            }
        }
        return Ok(keys);
    }
    let unique = |name: &str| name == "id" || c.field(name).is_some_and(|f| f.unique && f.required);
    if !keys.iter().any(|k| unique(&k.column)) {
        let descending = keys.last().is_some_and(|k| k.descending);
        keys.push(SortKey {
            column: "id".into(),
            descending,
        });
    }
    Ok(keys)
}

/// Parses `id,title`: the keys a response keeps (`expand` is kept when asked for).
pub(crate) fn parse_fields(
    c: &Collection,
    fields: Option<&str>,
) -> Result<Option<Vec<String>>, StoreError> {
    let Some(text) = fields.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name != "expand" && c.column_type(name).is_none() {
            return Err(StoreError::invalid(
                "fields",
                format!("unknown field `{name}` in collection `{}`", c.name),
            ));
        }
        out.push(name.to_string());
    }
    Ok(Some(out))
}

/// Parses `author,author.team`: relation paths, each step a relation field.
pub(crate) fn parse_expand(
    c: &Collection,
    lookup: Lookup<'_>,
    expand: Option<&str>,
) -> Result<Vec<Vec<String>>, StoreError> {
    let mut paths = Vec::new();
    for path in expand
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let steps: Vec<String> = path.split('.').map(str::to_string).collect();
        if steps.len() > MAX_EXPAND_DEPTH {
            return Err(StoreError::invalid(
                "expand",
                format!("`{path}` is deeper than {MAX_EXPAND_DEPTH} levels"),
            ));
        }
        let mut current: Arc<Collection> = Arc::new(c.clone());
        for (i, step) in steps.iter().enumerate() {
            if current
                .field(step)
                .is_some_and(crate::account_refs::targets_accounts)
            {
                if i + 1 < steps.len() {
                    return Err(StoreError::invalid(
                        "expand",
                        format!(
                            "`{step}` points at accounts, which expand to a public profile and \
                             cannot be followed further"
                        ),
                    ));
                }
                continue;
            }
            let target = current
                .field(step)
                .filter(|f| f.kind == FieldType::Relation)
                .and_then(|f| f.options.collection.as_deref())
                .and_then(lookup);
            match target {
                Some(t) => current = t,
                None => {
                    return Err(StoreError::invalid(
                        "expand",
                        format!("`{step}` is not a relation field of `{}`", current.name),
                    ));
                }
            }
        }
        paths.push(steps);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(
        page: Option<&str>,
        skip_total: Option<&str>,
    ) -> Result<(i64, i64, bool), StoreError> {
        ListParams {
            page: page.map(str::to_string),
            skip_total: skip_total.map(str::to_string),
            ..Default::default()
        }
        .paging()
    }

    #[test]
    fn paging_takes_what_the_document_says() {
        assert_eq!(paging(None, None).unwrap(), (1, DEFAULT_PER_PAGE, false));
        assert_eq!(
            paging(Some("3"), Some("true")).unwrap(),
            (3, DEFAULT_PER_PAGE, true)
        );
        assert!(!paging(None, Some("false")).unwrap().2);
    }

    #[test]
    fn empty_or_loose_values_are_refused() {
        for page in ["", " 2", "+2", "0", "1.0"] {
            assert!(paging(Some(page), None).is_err(), "page={page:?}");
        }
        for skip in ["", "1", "0", "yes", "TRUE"] {
            assert!(paging(None, Some(skip)).is_err(), "skip_total={skip:?}");
        }
    }
}

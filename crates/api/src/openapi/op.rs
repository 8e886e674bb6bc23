//! [`Op`]: one operation of the document, built so that the statuses every route shares are
//! declared by construction: who may call it ([`Access`]) adds 401 and 403, a JSON body adds
//! 400, 413 and 415, and every operation gets 429 (rate limits) and 503 (the request
//! deadline, an unreachable database) unless it is an operations endpoint.

use serde_json::{Map, Value, json};

/// Who may call an operation, and so its `security` and authentication statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// No credentials read (login, health checks).
    Open,
    /// Anyone; a token or key is used when sent, and an invalid one is a 401.
    Optional,
    /// A signed-in user or an API key.
    Signed,
    /// A superuser (401 without a token, 403 without the `admin` role).
    Admin,
    /// The `[metrics] token` when one is set.
    Metrics,
}

/// An operation under construction.
#[derive(Debug)]
pub(super) struct Op {
    op: Map<String, Value>,
    responses: Map<String, Value>,
    parameters: Vec<Value>,
    limited: bool,
}

/// Starts an operation with a tag, a summary and an `operationId`.
pub(super) fn op(tag: &str, id: &str, summary: &str) -> Op {
    let mut op = Map::new();
    op.insert("tags".into(), json!([tag]));
    op.insert("operationId".into(), id.into());
    op.insert("summary".into(), summary.into());
    Op {
        op,
        responses: Map::new(),
        parameters: Vec::new(),
        limited: true,
    }
}

impl Op {
    /// Sets `security` and declares 401 (and 403 for superuser routes).
    pub(super) fn access(mut self, access: Access) -> Self {
        let (security, unauthorized) = match access {
            Access::Open => (json!([]), None),
            Access::Optional => (
                json!([{}, {"bearer": []}, {"apiKey": []}]),
                Some("The token or API key sent is invalid, expired or revoked"),
            ),
            Access::Signed => (
                json!([{"bearer": []}, {"apiKey": []}]),
                Some("No token or API key, or an invalid, expired or revoked one"),
            ),
            Access::Admin => (
                json!([{"bearer": []}, {"apiKey": []}]),
                Some("No token or API key, or an invalid, expired or revoked one"),
            ),
            Access::Metrics => (
                json!([{}, {"metricsToken": []}]),
                Some("`[metrics] token` is set and was not sent"),
            ),
        };
        self.op.insert("security".into(), security);
        if let Some(d) = unauthorized {
            self = self.error(401, d);
        }
        if access == Access::Admin {
            self = self.error(403, "The caller lacks the `admin` role");
        }
        self
    }

    /// A longer description.
    pub(super) fn describe(mut self, text: &str) -> Self {
        self.op.insert("description".into(), text.into());
        self
    }

    /// A JSON request body with `schema`; declares 400, 413 and 415.
    pub(super) fn body(mut self, schema: Value, required: bool) -> Self {
        self.op.insert(
            "requestBody".into(),
            json!({"required": required, "content": {"application/json": {"schema": schema}}}),
        );
        self.error(
            400,
            "The body is malformed or a field is invalid (see `errors`)",
        )
        .error(413, "The body is larger than the limit")
        .error(415, "The body is not sent as `application/json`")
    }

    /// A required HTML form body (`application/x-www-form-urlencoded`) with `schema`; the
    /// route answers its own errors (as pages), so no status is declared here.
    pub(super) fn form(mut self, schema: Value) -> Self {
        self.op.insert(
            "requestBody".into(),
            json!({"required": true,
                "content": {"application/x-www-form-urlencoded": {"schema": schema}}}),
        );
        self
    }

    /// A parameter of this operation.
    pub(super) fn param(mut self, p: Value) -> Self {
        self.parameters.push(p);
        self
    }

    /// A query parameter with its schema; declares 400 (invalid query).
    pub(super) fn query(self, name: &str, description: &str, schema: Value) -> Self {
        self.param(json!({"name": name, "in": "query", "required": false,
            "description": description, "schema": schema}))
            .error(400, "A query parameter is invalid (see `errors`)")
    }

    /// A JSON success response.
    pub(super) fn ok(mut self, status: u16, description: &str, schema: Value) -> Self {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": {"application/json": {"schema": schema}}}),
        );
        self
    }

    /// A success response without a body.
    pub(super) fn empty(mut self, status: u16, description: &str) -> Self {
        self.responses
            .insert(status.to_string(), json!({"description": description}));
        self
    }

    /// A success response of another media type.
    pub(super) fn media(
        mut self,
        status: u16,
        description: &str,
        media: &str,
        schema: Value,
    ) -> Self {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": {media: {"schema": schema}}}),
        );
        self
    }

    /// A raw response object (redirects with headers).
    pub(super) fn response(mut self, status: u16, response: Value) -> Self {
        self.responses.insert(status.to_string(), response);
        self
    }

    /// A problem+json error; a second one of the same status joins the description.
    pub(super) fn error(mut self, status: u16, description: &str) -> Self {
        let key = status.to_string();
        let description = match self
            .responses
            .get(&key)
            .and_then(|r| r["description"].as_str())
        {
            Some(d) if d.contains(description) => d.to_string(),
            Some(d) => format!("{d}; or: {description}"),
            None => description.to_string(),
        };
        self.responses.insert(key, problem(status, &description));
        self
    }

    /// Not rate limited (`/healthz`, `/readyz`, `/metrics`).
    pub(super) fn unlimited(mut self) -> Self {
        self.limited = false;
        self
    }

    /// The operation object.
    pub(super) fn build(mut self) -> Value {
        if self.limited {
            self = self.error(429, "Over a rate limit; retry after `Retry-After` seconds");
        }
        self = self.error(
            503,
            "The request ran past `server.request_timeout`, or the database is unavailable",
        );
        if !self.parameters.is_empty() {
            self.op
                .insert("parameters".into(), Value::Array(self.parameters));
        }
        self.op
            .insert("responses".into(), Value::Object(self.responses));
        Value::Object(self.op)
    }
}

/// A problem+json response; 401, 429 and 503 describe the headers they carry.
pub(super) fn problem(status: u16, description: &str) -> Value {
    let mut r = json!({"description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let header = match status {
        401 => Some(("WWW-Authenticate", json!({"type": "string"}))),
        429 | 503 => Some((
            "Retry-After",
            json!({"type": "integer", "minimum": 0, "description": "Seconds to wait"}),
        )),
        _ => None,
    };
    if let Some((name, schema)) = header {
        r["headers"] = json!({name: {"schema": schema}});
    }
    r
}

/// A required path parameter.
pub(super) fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string"}})
}

/// `$ref` to a component schema.
pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A path item from its operations (`get`, `post`, ...).
pub(super) fn path_item(ops: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(ops.into_iter().map(|(m, o)| (m.to_string(), o)).collect())
}

/// `page` and `per_page` (1 to `max`), as the list routes parse them.
pub(super) fn paging(op: Op, max: i64) -> Op {
    op.query(
        "page",
        "Page number, from 1",
        json!({"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
    )
    .query(
        "per_page",
        "Items per page",
        json!({"type": "integer", "minimum": 1, "maximum": max}),
    )
}

/// The characters `str::trim` removes (Unicode `White_Space`), as code point ranges.
const WHITESPACE: &[(u32, u32)] = &[
    (0x09, 0x0D),
    (0x20, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
];

/// The body of a regular-expression class (`[...]`) of the characters the server trims, for
/// patterns that must accept exactly what the server accepts around a value.
pub(super) fn whitespace_class() -> String {
    WHITESPACE
        .iter()
        .map(|&(from, to)| match from == to {
            true => format!("\\u{from:04X}"),
            false => format!("\\u{from:04X}-\\u{to:04X}"),
        })
        .collect()
}

/// A search text as the server takes it: 1 to `max` characters, not all whitespace, no NUL.
pub(super) fn text_query(max: usize) -> Value {
    let ws = whitespace_class();
    json!({"type": "string", "minLength": 1, "maxLength": max,
        "pattern": format!("^[^\\u0000]*[^{ws}\\u0000][^\\u0000]*$"),
        "description": "Not blank; no NUL characters"})
}

/// The problem+json schema every error is sent with.
pub(super) fn problem_schema() -> Value {
    let codes: Vec<&str> = crate::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    json!({"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": codes, "description": "Stable and machine-readable: branch on this, not on `detail`"},
        "errors": {"type": "object", "additionalProperties": {"type": "string"},
            "description": "A message per invalid field or parameter"}}})
}

/// The security schemes: access tokens and API keys are both sent as
/// `Authorization: Bearer ...` (EventSource clients may use `?token=`).
pub(super) fn security_schemes() -> Value {
    json!({
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "An access token from `POST /api/auth/login` or `/api/auth/refresh`"},
        "apiKey": {"type": "http", "scheme": "bearer",
            "bearerFormat": "API key (`bk_...`)",
            "description": "An API key from `POST /api/auth/keys`, sent as `Authorization: Bearer bk_...`"},
        "queryToken": {"type": "apiKey", "in": "query", "name": "token",
            "description": "An access token or API key in the query, for EventSource clients that cannot set headers"},
        "metricsToken": {"type": "http", "scheme": "bearer",
            "description": "`[metrics] token`, when set"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_what_trim_removes() {
        let listed = |c: u32| WHITESPACE.iter().any(|&(a, b)| (a..=b).contains(&c));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(c.is_whitespace(), listed(c as u32), "{:04X}", c as u32);
        }
        assert!(whitespace_class().starts_with("\\u0009-\\u000D\\u0020"));
    }
}

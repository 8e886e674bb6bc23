//! The routes that do not depend on collections: auth, account, API keys, users, audit,
//! batch, operations and the documentation itself, plus the superuser-only schema routes.

use serde_json::{Map, Value, json};

use super::op::{Access, Op, op, path_item, path_param, schema_ref};

/// Role names as the server accepts them.
fn role() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"})
}

/// A closed object: these bodies refuse unknown keys.
fn object(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props, "additionalProperties": false})
}

/// Login, register, refresh, logout, me, password and reset, OpenID Connect.
pub(super) fn auth(paths: &mut Map<String, Value>) {
    let tokens = schema_ref("TokenPair");
    let refresh_body = object(
        &["refresh_token"],
        json!({"refresh_token": {"type": "string"}}),
    );
    paths.insert(
        "/api/auth/login".into(),
        path_item([(
            "post",
            op("auth", "login", "Log in with email and password")
                .access(Access::Open)
                .body(
                    object(
                        &["email", "password"],
                        json!({"email": {"type": "string"}, "password": {"type": "string"}}),
                    ),
                    true,
                )
                .ok(200, "An access and a refresh token", tokens.clone())
                .error(401, "Wrong email or password")
                .error(429, "Too many failed logins for this account or address")
                .build(),
        )]),
    );
    paths.insert(
        "/api/auth/register".into(),
        path_item([(
            "post",
            op(
                "auth",
                "register",
                "Create an account (when auth.allow_registration is on)",
            )
            .access(Access::Open)
            .describe("Keys other than `email` and `password` are stored as the profile.")
            .body(
                object(
                    &["email", "password"],
                    json!({"email": {"type": "string", "format": "email"},
                "password": {"type": "string", "minLength": 10}}),
                ),
                true,
            )
            .ok(201, "The new account", schema_ref("Registered"))
            .error(403, "Self-registration is closed")
            .error(409, "The email is taken")
            .build(),
        )]),
    );
    paths.insert(
        "/api/auth/refresh".into(),
        path_item([(
            "post",
            op(
                "auth",
                "refresh",
                "Exchange a refresh token for a new pair (rotation)",
            )
            .access(Access::Open)
            .body(refresh_body.clone(), true)
            .ok(
                200,
                "A new pair; the old refresh token stops working",
                tokens,
            )
            .error(401, "The refresh token is invalid, expired or already used")
            .build(),
        )]),
    );
    paths.insert(
        "/api/auth/logout".into(),
        path_item([(
            "post",
            op(
                "auth",
                "logout",
                "Revoke a refresh token and the account's access tokens",
            )
            .access(Access::Open)
            .body(refresh_body, true)
            .empty(204, "Revoked (also when the token was unknown)")
            .build(),
        )]),
    );
    paths.insert("/api/auth/me".into(), path_item([
        ("get", op("auth", "me", "The current account").access(Access::Signed)
            .ok(200, "The account", schema_ref("User"))
            .error(403, "An API key has no account of its own")
            .build()),
        ("patch", op("auth", "update_me", "Change the current account's profile").access(Access::Signed)
            .describe("Every key is a profile field; `id`, `email`, `roles`, passwords and system fields cannot be set here.")
            .body(json!({"type": "object"}), true)
            .ok(200, "The account", schema_ref("User"))
            .error(403, "An API key has no account of its own")
            .build()),
    ]));
    paths.insert(
        "/api/auth/password".into(),
        path_item([(
            "post",
            op(
                "auth",
                "change_password",
                "Change the current account's password",
            )
            .access(Access::Signed)
            .body(
                object(
                    &["current_password", "new_password"],
                    json!({"current_password": {"type": "string"},
                "new_password": {"type": "string", "minLength": 10}}),
                ),
                true,
            )
            .empty(204, "Changed; every session of the account is revoked")
            .error(403, "An API key has no password")
            .build(),
        )]),
    );
    paths.insert(
        "/api/auth/password-reset".into(),
        path_item([(
            "post",
            op(
                "auth",
                "request_password_reset",
                "Email a password reset link",
            )
            .access(Access::Open)
            .body(
                object(&["email"], json!({"email": {"type": "string"}})),
                true,
            )
            .ok(
                202,
                "The same answer whether or not the address has an account",
                schema_ref("Status"),
            )
            .build(),
        )]),
    );
    paths.insert(
        "/api/auth/password-reset/confirm".into(),
        path_item([(
            "post",
            op(
                "auth",
                "confirm_password_reset",
                "Set a new password with a reset token",
            )
            .access(Access::Open)
            .body(
                object(
                    &["token", "password"],
                    json!({"token": {"type": "string"},
                "password": {"type": "string", "minLength": 10}}),
                ),
                true,
            )
            .empty(204, "Changed; every session of the account is revoked")
            .build(),
        )]),
    );
    let provider = || path_param("provider", "A provider of `[auth.oidc.NAME]`");
    paths.insert("/api/auth/oidc/{provider}".into(), path_item([("get",
        op("auth", "oidc_start", "Log in with an OpenID Connect provider").access(Access::Open)
            .param(provider())
            .query("redirect_to", "A relative path the client returns to", json!({"type": "string", "maxLength": 2048}))
            .response(303, json!({"description": "To the provider's authorization endpoint",
                "headers": {"Location": {"schema": {"type": "string"}}, "Set-Cookie": {"schema": {"type": "string"}}}}))
            .error(404, "Unknown provider")
            .error(502, "The provider's discovery document cannot be read")
            .build())]));
    paths.insert("/api/auth/oidc/{provider}/callback".into(), path_item([("get",
        op("auth", "oidc_callback", "Finish an OpenID Connect login").access(Access::Open)
            .param(provider())
            .query("code", "The authorization code", json!({"type": "string"}))
            .query("state", "The state of the login", json!({"type": "string"}))
            .query("error", "An error from the provider", json!({"type": "string"}))
            .ok(200, "The same tokens as a password login, with `redirect_to` when one was given",
                schema_ref("TokenPair"))
            .error(401, "The state, code or ID token is invalid or expired, or the identity cannot be linked")
            .error(404, "Unknown provider")
            .error(502, "The provider failed")
            .build())]));
}

/// API keys and accounts, superusers only.
pub(super) fn admin(paths: &mut Map<String, Value>) {
    paths.insert("/api/auth/keys".into(), path_item([
        ("get", op("keys", "list_keys", "API keys (never the keys themselves)").access(Access::Admin)
            .ok(200, "Every key", schema_ref("ApiKeyList")).build()),
        ("post", op("keys", "create_key", "Create an API key; the key is shown only in this answer").access(Access::Admin)
            .body(json!({"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "roles": {"type": ["array", "null"], "items": role()},
                "expires_at": {"type": ["string", "null"], "format": "date-time",
                    "description": "At most auth.api_key_max_ttl from now"}}}), true)
            .ok(201, "The key", schema_ref("CreatedApiKey")).build()),
    ]));
    paths.insert(
        "/api/auth/keys/{id}".into(),
        path_item([(
            "delete",
            op("keys", "delete_key", "Revoke an API key")
                .access(Access::Admin)
                .param(path_param("id", "The key's id"))
                .empty(204, "Revoked")
                .error(404, "No such key")
                .build(),
        )]),
    );
    let users = paging(
        op("users", "list_users", "Accounts, oldest first").access(Access::Admin),
        500,
    )
    .ok(200, "A page of accounts", schema_ref("UserPage"))
    .build();
    paths.insert("/api/users".into(), path_item([("get", users)]));
    paths.insert(
        "/api/users/{id}".into(),
        path_item([(
            "patch",
            op(
                "users",
                "update_user",
                "Grant or revoke roles; a role taken away revokes the account's API keys",
            )
            .access(Access::Admin)
            .param(path_param("id", "The account's id"))
            .body(
                json!({"type": "object", "required": ["roles"], "additionalProperties": false,
                "properties": {"roles": {"type": "array", "items": role()}}}),
                true,
            )
            .ok(200, "The account", schema_ref("User"))
            .error(404, "No such account")
            .error(409, "The last superuser cannot lose the `admin` role")
            .build(),
        )]),
    );
    let audit = super::records::list_params(
        op("audit", "list_audit", "The audit log, newest first").access(Access::Admin),
    )
    .query(
        "fields",
        "Comma-separated keys to return",
        super::projection::fields(&brigade_store::audit_collection()),
    )
    .ok(200, "A page of entries", schema_ref("AuditPage"))
    .build();
    paths.insert("/api/audit".into(), path_item([("get", audit)]));
}

fn paging(op: Op, max: i64) -> Op {
    super::op::paging(op, max)
}

/// `/api/batch`.
pub(super) fn batch(paths: &mut Map<String, Value>) {
    paths.insert("/api/batch".into(), path_item([("post",
        op("records", "batch", "Several record writes in one transaction, all or nothing").access(Access::Optional)
            .body(json!({"type": "object", "required": ["requests"], "properties": {
                "requests": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"oneOf": [
                    {"type": "object", "required": ["method", "url", "body"], "properties": {
                        "method": {"const": "POST"},
                        "url": {"type": "string", "pattern": "^/api/collections/[^/?#]+/records$"},
                        "body": {"type": "object"}}},
                    {"type": "object", "required": ["method", "url"], "properties": {
                        "method": {"const": "DELETE"},
                        "url": {"type": "string", "pattern": "^/api/collections/[^/?#]+/records/[^/?#]+$"},
                        "body": {"type": "object"}}},
                    {"type": "object", "required": ["method", "url", "body"], "properties": {
                        "method": {"const": "PATCH"},
                        "url": {"type": "string", "pattern": "^/api/collections/[^/?#]+/records/[^/?#]+$"},
                        "body": {"type": "object"}}}]}}}}), true)
            .ok(200, "One result per request, in order", json!({"type": "array", "items": schema_ref("BatchResult")}))
            .error(403, "A rule refused one of the writes; nothing was written")
            .error(404, "A collection or record does not exist; nothing was written")
            .error(405, "A write to a read-only collection; nothing was written")
            .error(409, "A unique value is taken or a record is still referenced; nothing was written")
            .build())]));
}

/// `/healthz`, `/readyz`, `/metrics`, `/api/openapi.json` and `/api/docs`.
pub(super) fn operations(paths: &mut Map<String, Value>) {
    paths.insert(
        "/healthz".into(),
        path_item([(
            "get",
            op("operations", "healthz", "The process is alive")
                .access(Access::Open)
                .unlimited()
                .ok(200, "ok", schema_ref("Status"))
                .build(),
        )]),
    );
    paths.insert(
        "/readyz".into(),
        path_item([(
            "get",
            op(
                "operations",
                "readyz",
                "The database is reachable and migrations are applied",
            )
            .access(Access::Open)
            .unlimited()
            .ok(200, "ready", schema_ref("Status"))
            .error(
                503,
                "Not ready: the database is unreachable or migrations are pending",
            )
            .build(),
        )]),
    );
    paths.insert(
        "/metrics".into(),
        path_item([(
            "get",
            op("operations", "metrics", "Prometheus metrics")
                .access(Access::Metrics)
                .unlimited()
                .media(
                    200,
                    "The Prometheus text format",
                    "text/plain",
                    json!({"type": "string"}),
                )
                .error(404, "Metrics are served on `[metrics] listen` instead")
                .build(),
        )]),
    );
    paths.insert(
        "/api/openapi.json".into(),
        path_item([(
            "get",
            op(
                "operations",
                "openapi",
                "This document, for the caller: superusers see every route",
            )
            .access(Access::Optional)
            .ok(200, "OpenAPI 3.1", json!({"type": "object"}))
            .build(),
        )]),
    );
    let html = |id: &str, summary: &str| {
        op("operations", id, summary).access(Access::Open).media(
            200,
            "Swagger UI",
            "text/html",
            json!({"type": "string"}),
        )
    };
    paths.insert("/api/docs".into(), path_item([("get",
        op("operations", "docs_redirect", "Redirects to /api/docs/").access(Access::Open)
            .response(308, json!({"description": "To /api/docs/", "headers": {"Location": {"schema": {"type": "string"}}}}))
            .build())]));
    paths.insert(
        "/api/docs/".into(),
        path_item([("get", html("docs", "Swagger UI for this document").build())]),
    );
    let page = || json!({"type": "string"});
    let html_page = |description: &str| json!({"description": description, "content": {"text/html": {"schema": page()}}});
    paths.insert(
        "/reset-password".into(),
        path_item([
            (
                "get",
                op("account", "reset_page", "The page the password-reset mail links to")
                    .access(Access::Open)
                    .query("token", "The token from the mail", json!({"type": "string"}))
                    .media(200, "A form for the new password", "text/html", page())
                    .build(),
            ),
            (
                "post",
                op("account", "reset_page_submit", "Sets the new password from the page's form")
                    .access(Access::Open)
                    .describe("The form the page posts: the token from the mail, and the new password twice. Missing fields are empty; other fields are ignored, as browsers send them.")
                    .form(json!({"type": "object", "properties": {
                        "token": {"type": "string"}, "password": {"type": "string"},
                        "confirm": {"type": "string", "description": "The same as `password`"}}}))
                    .response(200, html_page("The password is changed, as a page"))
                    .response(400, html_page("The form was refused (the two passwords differ, the token is invalid, used or expired, the password is too weak), as a page"))
                    .response(413, html_page("The form is larger than the limit, as a page"))
                    .response(415, html_page("The body is not sent as `application/x-www-form-urlencoded`, as a page"))
                    .build(),
            ),
        ]),
    );
    paths.insert("/api/docs/{file}".into(), path_item([("get",
        op("operations", "docs_file", "A file of Swagger UI").access(Access::Open)
            .param(path_param("file", "The file's path"))
            .response(200, json!({"description": "The file", "content": {"*/*": {"schema": {"type": "string"}}}}))
            .error(404, "No such file").build())]));
}

/// `/api/collections[/{name}]`, superusers only.
pub(super) fn schema(paths: &mut Map<String, Value>) {
    let collection = schema_ref("Collection");
    let name = || path_param("name", "The collection's name");
    paths.insert(
        "/api/collections".into(),
        path_item([
            (
                "get",
                op("schema", "list_collections", "Every collection")
                    .access(Access::Admin)
                    .ok(
                        200,
                        "The collections",
                        json!({"type": "object", "required": ["items"],
                "properties": {"items": {"type": "array", "items": collection.clone()}}}),
                    )
                    .build(),
            ),
            (
                "post",
                op(
                    "schema",
                    "create_collection",
                    "Create a collection (recorded as a migration)",
                )
                .access(Access::Admin)
                .body(schema_ref("CollectionInput"), true)
                .ok(201, "Created", collection.clone())
                .error(409, "The name is taken")
                .build(),
            ),
        ]),
    );
    paths.insert(
        "/api/collections/{name}".into(),
        path_item([
            (
                "get",
                op("schema", "read_collection", "A collection")
                    .access(Access::Admin)
                    .param(name())
                    .ok(200, "The collection", collection.clone())
                    .error(404, "Unknown collection")
                    .build(),
            ),
            (
                "patch",
                op(
                    "schema",
                    "update_collection",
                    "Change fields, indexes or rules (recorded as a migration)",
                )
                .access(Access::Admin)
                .param(name())
                .body(schema_ref("CollectionPatch"), true)
                .ok(200, "The collection", collection)
                .error(404, "Unknown collection")
                .error(409, "A new name or index conflicts with existing data")
                .error(422, "A type change the data cannot take")
                .build(),
            ),
            (
                "delete",
                op(
                    "schema",
                    "delete_collection",
                    "Drop a collection and its records",
                )
                .access(Access::Admin)
                .param(name())
                .empty(204, "Dropped")
                .error(404, "Unknown collection")
                .error(
                    409,
                    "Another collection's relation or a pipeline still uses it",
                )
                .build(),
            ),
        ]),
    );
}

/// The schemas of collection definitions and of the audit log, for superusers.
pub(super) fn schemas(schemas: &mut Map<String, Value>) {
    super::definitions::add(schemas);
    schemas.insert("AuditEntry".into(), json!({"type": "object", "properties": {
        "id": {"type": "string"}, "action": {"type": "string", "description": "e.g. auth.login, record.create"},
        "actor": {"type": ["string", "null"]}, "target": {"type": ["string", "null"]},
        "ip": {"type": ["string", "null"]}, "request_id": {"type": ["string", "null"]},
        "detail": {}, "created": {"type": "string", "format": "date-time"}, "updated": {"type": "string", "format": "date-time"}}}));
    schemas.insert("AuditPage".into(), json!({"type": "object", "required": ["items", "page", "per_page"], "properties": {
        "items": {"type": "array", "items": schema_ref("AuditEntry")},
        "page": {"type": "integer"}, "per_page": {"type": "integer"},
        "total_items": {"type": ["integer", "null"]}, "total_pages": {"type": ["integer", "null"]}}}));
}

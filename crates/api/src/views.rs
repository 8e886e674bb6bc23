//! The fixed-shape response bodies of the routes, as types. Handlers serialise these instead
//! of building `json!` values, and the OpenAPI document takes their schemas from the same
//! types (utoipa's `ToSchema`), so a response and its documentation cannot drift apart.
//!
//! Field order is the order keys are sent in. Shapes that come from other crates (records,
//! collections, pipelines, search hits) are described in [`crate::openapi`] by hand.

use brigade_store::{ApiKeyRow, UserRow};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// `{"status": ...}`: liveness, readiness and the answer to a reset request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status)]
pub(crate) struct StatusView {
    pub(crate) status: String,
}

impl StatusView {
    pub(crate) fn new(status: &str) -> Self {
        StatusView {
            status: status.to_string(),
        }
    }
}

/// An account as users and superusers see it (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub(crate) struct UserView {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) roles: Vec<String>,
    /// Free-form profile fields.
    #[schema(value_type = Object)]
    pub(crate) profile: Map<String, Value>,
    #[schema(format = DateTime)]
    pub(crate) created: String,
    #[schema(format = DateTime)]
    pub(crate) updated: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            roles: u.roles.clone(),
            profile: u.profile.clone(),
            created: u.created.clone(),
            updated: u.updated.clone(),
        }
    }
}

/// `{"user": ...}`: the answer to a registration.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Registered)]
pub(crate) struct RegisteredView {
    pub(crate) user: UserView,
}

/// Who a token pair was issued to.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TokenUser)]
pub(crate) struct TokenUserView {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) roles: Vec<String>,
}

/// The answer to a login or a refresh.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TokenPair)]
pub(crate) struct TokenPairView {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub(crate) access_token: String,
    /// Single-use: `POST /api/auth/refresh` returns a new pair for it.
    pub(crate) refresh_token: String,
    /// Always `Bearer`.
    pub(crate) token_type: String,
    /// Seconds the access token stays valid.
    pub(crate) expires_in: u64,
    pub(crate) user: TokenUserView,
    /// Where an OpenID Connect login asked to return to (only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redirect_to: Option<String>,
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserPage)]
pub(crate) struct UserPageView {
    pub(crate) items: Vec<UserView>,
    pub(crate) page: i64,
    pub(crate) per_page: i64,
    pub(crate) total_items: i64,
    pub(crate) total_pages: i64,
}

/// A stored API key (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub(crate) struct ApiKeyView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) roles: Vec<String>,
    /// The account the key acts for.
    pub(crate) created_by: String,
    #[schema(format = DateTime)]
    pub(crate) expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) last_used: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) created: String,
}

impl From<ApiKeyRow> for ApiKeyView {
    fn from(k: ApiKeyRow) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name,
            roles: k.roles,
            created_by: k.created_by,
            expires_at: k.expires_at,
            last_used: k.last_used,
            created: k.created,
        }
    }
}

/// `{"items": [...]}` of API keys.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKeyList)]
pub(crate) struct ApiKeyListView {
    pub(crate) items: Vec<ApiKeyView>,
}

/// A new API key: the stored key and, this once, the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedApiKey)]
pub(crate) struct CreatedApiKeyView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) roles: Vec<String>,
    pub(crate) created_by: String,
    #[schema(format = DateTime)]
    pub(crate) expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) last_used: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) created: String,
    /// The key to send as `Authorization: Bearer <key>`; shown only here.
    pub(crate) key: String,
}

impl CreatedApiKeyView {
    pub(crate) fn new(k: ApiKeyRow, key: String) -> Self {
        CreatedApiKeyView {
            id: k.id,
            name: k.name,
            roles: k.roles,
            created_by: k.created_by,
            expires_at: k.expires_at,
            last_used: k.last_used,
            created: k.created,
            key,
        }
    }
}

/// One result of a batch, in request order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchResult)]
pub(crate) struct BatchResultView {
    /// The status the request would have had on its own (201, 200 or 204).
    pub(crate) status: u16,
    /// The record created or updated; `null` for a deletion.
    #[schema(value_type = Option<Object>)]
    pub(crate) body: Option<Map<String, Value>>,
}

/// The answer to starting a run.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunStarted)]
pub(crate) struct RunStartedView {
    pub(crate) run_id: String,
}

/// What an ingest request did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DocumentsIngested)]
pub(crate) struct DocumentsIngestedView {
    /// The documents' ids, in request order (generated for those sent without one).
    pub(crate) ids: Vec<String>,
    pub(crate) indexed: usize,
    pub(crate) skipped: usize,
    pub(crate) chunks: usize,
}

/// `{"run_id", "status": "cancelling"}`: the answer to cancelling a run.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunCancelling)]
pub(crate) struct RunCancellingView {
    pub(crate) run_id: String,
    /// Always `cancelling`.
    pub(crate) status: String,
}

/// Adds the schema of every view (and of the views they contain) to `schemas`, by name.
pub(crate) fn schemas(schemas: &mut Map<String, Value>) {
    fn add<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(out);
        out.push((T::name().into_owned(), T::schema()));
    }
    let mut all = Vec::new();
    add::<StatusView>(&mut all);
    add::<UserView>(&mut all);
    add::<RegisteredView>(&mut all);
    add::<TokenUserView>(&mut all);
    add::<TokenPairView>(&mut all);
    add::<UserPageView>(&mut all);
    add::<ApiKeyView>(&mut all);
    add::<ApiKeyListView>(&mut all);
    add::<CreatedApiKeyView>(&mut all);
    add::<BatchResultView>(&mut all);
    add::<RunStartedView>(&mut all);
    add::<RunCancellingView>(&mut all);
    add::<DocumentsIngestedView>(&mut all);
    for (name, schema) in all {
        // A schema is plain data: serialising it cannot fail, and one that did is left out
        // (the document test names it).
        if let Ok(value) = serde_json::to_value(schema) {
            schemas.insert(name, value);
        }
    }
}

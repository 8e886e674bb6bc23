//! `/api/openapi.json` (OpenAPI 3.1, generated from the live collections on each request so
//! it follows schema changes, and for the caller: only superusers see superuser-only
//! collections and routes) and `/api/docs` (Swagger UI served from the binary).

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use crate::error::ApiError;
use brigade_core::settings::IndexSource;
use brigade_store::Access;

use super::Routes;
use crate::extract::{ApiPath, Caller};
use crate::openapi::{self, Audience};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/openapi.json", openapi_document)
        .get("/api/docs", || async { Redirect::permanent("/api/docs/") })
        .get("/api/docs/", || swagger_file(ApiPath(String::new())))
        .get("/api/docs/{*file}", swagger_file)
}

async fn openapi_document(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let audience = match caller.access() {
        Access::Superuser => Audience::Superuser,
        Access::Caller(_) => Audience::Public,
    };
    let collections = state.store().collections();
    // An index that follows a collection the caller may not see is not named either.
    let indexes: Vec<String> = state
        .search()
        .indexes()
        .filter(|i| match &i.settings.source {
            IndexSource::Collection { name, .. } => collections
                .iter()
                .find(|c| c.name == *name)
                .is_some_and(|c| openapi::shows(audience, c)),
            _ => true,
        })
        .map(|i| i.name().to_string())
        .collect();
    Json(openapi::document(&collections, &indexes, audience))
}

async fn swagger_file(ApiPath(file): ApiPath<String>) -> Response {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/api/openapi.json")))
        .clone();
    match utoipa_swagger_ui::serve(&file, config) {
        Ok(Some(f)) => {
            let mut response = (StatusCode::OK, f.bytes.into_owned()).into_response();
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&f.content_type) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            if f.gzpipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => ApiError::not_found("No such documentation file.").into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

//! [`Routes`]: the router and the table of its routes (template and method), built by the
//! same calls. The table is what the OpenAPI document is checked against, so a route added
//! to a resource's `routes()` and left out of the document fails a test instead of going
//! unnoticed.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};

use crate::state::AppState;

/// One route: a path template as axum spells it (`/api/runs/{id}`, `/api/docs/{*file}`) and
/// a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: &'static str,
    pub method: Method,
}

/// A router and the routes it was given.
pub(crate) struct Routes {
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    pub(crate) fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, Method::GET, get(handler))
    }

    pub(crate) fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, Method::POST, post(handler))
    }

    pub(crate) fn patch<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, Method::PATCH, patch(handler))
    }

    pub(crate) fn delete<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, Method::DELETE, delete(handler))
    }

    /// axum merges the methods of one path given in several calls.
    fn add(mut self, path: &'static str, method: Method, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, route);
        self.table.push(Route { path, method });
        self
    }

    /// The same routes with `f` applied to the router (layers, extensions).
    pub(crate) fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub(crate) fn into_router(self) -> Router<AppState> {
        self.router
    }

    pub(crate) fn into_table(self) -> Vec<Route> {
        self.table
    }
}

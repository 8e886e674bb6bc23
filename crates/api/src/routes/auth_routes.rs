//! Which routes are auth routes: the one list. They share the strict `rate_limit.auth`
//! budget per client address (sign-in, registration, tokens, passwords, OpenID Connect, and
//! logout and profile changes, which are security events too), and the routers build their
//! paths from the constants here, so a renamed route cannot fall off the list.

use axum::http::Method;

pub(crate) const LOGIN: &str = "/api/auth/login";
pub(crate) const REGISTER: &str = "/api/auth/register";
pub(crate) const REFRESH: &str = "/api/auth/refresh";
pub(crate) const LOGOUT: &str = "/api/auth/logout";
pub(crate) const ME: &str = "/api/auth/me";
pub(crate) const PASSWORD: &str = "/api/auth/password";
pub(crate) const PASSWORD_RESET: &str = "/api/auth/password-reset";
pub(crate) const PASSWORD_RESET_CONFIRM: &str = "/api/auth/password-reset/confirm";
/// The HTML page the reset mail links to.
pub(crate) const RESET_PAGE: &str = "/reset-password";
/// OpenID Connect login and callback, below this prefix.
pub(crate) const OIDC_PREFIX: &str = "/api/auth/oidc/";

/// Routes on the auth budget whatever the method.
const ANY_METHOD: &[&str] = &[
    LOGIN,
    REGISTER,
    REFRESH,
    LOGOUT,
    PASSWORD,
    PASSWORD_RESET,
    PASSWORD_RESET_CONFIRM,
];

/// Whether `method path` is charged to the auth budget.
pub(crate) fn is_auth_route(method: &Method, path: &str) -> bool {
    ANY_METHOD.contains(&path)
        || path.starts_with(OIDC_PREFIX)
        // Reading your own profile is not sensitive; changing it is.
        || (path == ME && method == Method::PATCH)
        // The page itself is a GET anyone may load; posting it sets a password.
        || (path == RESET_PAGE && method == Method::POST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_tokens_passwords_and_oidc_are_auth_routes_reading_is_not() {
        assert!(is_auth_route(&Method::POST, LOGIN));
        assert!(is_auth_route(&Method::POST, PASSWORD_RESET_CONFIRM));
        assert!(is_auth_route(
            &Method::GET,
            "/api/auth/oidc/google/callback"
        ));
        assert!(is_auth_route(&Method::PATCH, ME));
        assert!(!is_auth_route(&Method::GET, ME));
        assert!(is_auth_route(&Method::POST, RESET_PAGE));
        assert!(!is_auth_route(&Method::GET, RESET_PAGE));
        assert!(!is_auth_route(&Method::GET, "/api/collections"));
    }
}

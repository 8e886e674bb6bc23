//! `/reset-password`: the page the password-reset email links to. Without it a user who
//! has no front end of their own holds a token and nowhere to use it. A plain HTML form,
//! no script and no style, so its Content-Security-Policy allows nothing at all; the form
//! posts back here and the server calls the same reset as `POST
//! /api/auth/password-reset/confirm`. An app with its own front end sets
//! `server.public_url` to it and serves its own `/reset-password`.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brigade_auth::Secret;
use serde::Deserialize;

use super::account::reset_password;
use crate::audit::RequestMeta;
use crate::state::AppState;

// The reset email links here; the rate limiter counts posts as password attempts.
use super::auth_routes::RESET_PAGE as PATH;

pub(super) fn routes() -> super::Routes {
    super::Routes::new().get(PATH, show).post(PATH, submit)
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The form fields. `Debug` is not derived: the values are secrets.
#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn show(Query(q): Query<TokenQuery>) -> Response {
    page(StatusCode::OK, &form(&q.token, None))
}

async fn submit(
    State(state): State<AppState>,
    meta: RequestMeta,
    form_body: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    // A refused form is answered as a page too, like every other answer of this route: 415
    // when it is not sent as a form, 413 when it is too large, 400 otherwise.
    let f = match form_body {
        Ok(Form(f)) => f,
        Err(rejection) => {
            let status = match rejection.status() {
                s @ (StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE) => s,
                _ => StatusCode::BAD_REQUEST,
            };
            let reason = match status {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    "Send the form as `application/x-www-form-urlencoded`.".to_string()
                }
                _ => rejection.body_text(),
            };
            return page(status, &form("", Some(&reason)));
        }
    };
    if f.password != f.confirm {
        return page(
            StatusCode::BAD_REQUEST,
            &form(&f.token, Some("The two passwords differ.")),
        );
    }
    let token = Secret::new(f.token.clone());
    match reset_password(&state, &meta, &token, Secret::new(f.password)).await {
        Ok(()) => page(
            StatusCode::OK,
            "<h1>Password changed</h1>\n<p>Your password is changed and every session of the \
             account was signed out. Sign in with the new password.</p>",
        ),
        Err(e) => {
            let reason = e
                .errors
                .as_ref()
                .map(|errors| errors.summary())
                .unwrap_or_else(|| e.detail.clone());
            page(e.status, &form(&f.token, Some(&reason)))
        }
    }
}

fn form(token: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p role=\"alert\"><strong>{}</strong></p>\n", escape(e)))
        .unwrap_or_default();
    format!(
        "<h1>Choose a new password</h1>\n{error}<form method=\"post\" action=\"{PATH}\">\n\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
         <p><label>New password (10 characters or more)<br>\
         <input type=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"10\" required></label></p>\n\
         <p><label>The same again<br>\
         <input type=\"password\" name=\"confirm\" autocomplete=\"new-password\" minlength=\"10\" required></label></p>\n\
         <p><button type=\"submit\">Change password</button></p>\n</form>",
        escape(token)
    )
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Reset your password</title></head>\n<body>\n{body}\n</body>\n</html>\n"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// HTML-escapes text for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

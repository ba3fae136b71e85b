//! The web dashboard at `/ui/`: static files embedded in the binary, served beside the API.
//! The page holds no data of its own: it reads the API with the user's bearer token, so
//! authentication and RBAC are the API's (docs/dashboard.md).

pub mod assets;

use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rotor_apiserver::ApiServer;

/// Where the dashboard is served.
pub const PATH: &str = "/ui/";

/// Scripts, styles and requests only from this origin, nothing inline, no frames, no plugins:
/// a page that reads the API with a token must not run anything it did not ship.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes, to merge into the API's router (which has the fallback). The files
/// are served without credentials — they are the same for everyone — but only to requests
/// addressed to one of the server's names, as the API is.
pub fn router(server: Arc<ApiServer>) -> axum::Router {
    let file = {
        let server = server.clone();
        move |Path(name): Path<String>, request: Request| async move { serve(&server, &name, request) }
    };
    axum::Router::new()
        .route("/ui", get(|| async { Redirect::permanent(PATH) }))
        .route(
            PATH,
            get(move |request: Request| async move { serve(&server, "", request) }),
        )
        .route("/ui/{name}", get(file))
        .route("/favicon.ico", get(no_icon))
}

/// Browsers ask for `/favicon.ico` whatever the page says; without this route the request
/// would reach the API and be refused with 401, an error in every console. The page names its
/// icon (`/ui/favicon.svg`); this answers "no content" to everyone else, without credentials.
async fn no_icon() -> StatusCode {
    StatusCode::NO_CONTENT
}

fn serve(server: &ApiServer, name: &str, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(refused) = server.check_host(&parts) {
        return refused.into_response();
    }
    let Some(asset) = assets::find(name) else {
        return (StatusCode::NOT_FOUND, "no such file in the dashboard\n").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Small files; a new binary may ship new ones under the same names.
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the page loads is embedded, and nothing in it runs inline: the policy would
    /// block it in the browser.
    #[test]
    fn the_page_loads_only_embedded_files_and_nothing_inline() {
        let page = assets::find("").expect("index.html").body;
        for reference in page
            .split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        {
            assert!(
                assets::find(reference).is_some(),
                "index.html loads {reference}, which is not embedded"
            );
        }
        assert!(!page.contains("<script>"), "an inline script");
        assert!(!page.contains("style="), "an inline style");
        assert!(
            !page
                .split_whitespace()
                .any(|word| word.starts_with("on") && word.contains('=')),
            "an inline event handler"
        );
        for asset in assets::ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for import in asset
                .body
                .lines()
                .filter_map(|l| l.split("from \"./").nth(1))
            {
                let file = import.trim_end_matches(['"', ';']);
                assert!(
                    assets::find(file).is_some(),
                    "{} imports {file}, which is not embedded",
                    asset.name
                );
            }
        }
    }
}

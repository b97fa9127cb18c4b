//! The agent desktop demo page (`desktop/` in the repository) served at `/desktop/` on the
//! HTTP listener, when asked: `--desktop DIR` or the `[desktop]` table. Off by default.
//!
//! | TOML key | meaning | default |
//! |---|---|---|
//! | `desktop.dir` | folder served at `/desktop/` (relative to the configuration file's folder) | none: not served |
//!
//! The folder holds static files only (HTML, plain JS, CSS, and the CometD JS library in
//! `node_modules/` after `npm ci`), served by tower-http's [`ServeDir`] without credentials:
//! the page signs in to the JSON API itself. At start-up the gateway checks that the folder
//! has `index.html` and the installed library, so a missing `npm ci` is an error naming the
//! folder instead of a page that cannot load its script.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use serde::Deserialize;
use tower_http::services::ServeDir;

/// The path the page is served under (with a trailing slash; without one it redirects).
pub const DESKTOP_PATH: &str = "/desktop/";

/// The file the page loads the CometD library from, relative to the folder.
pub const COMETD_MODULE: &str = "node_modules/cometd/cometd.js";

/// Settings of the desktop page (the `[desktop]` table).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopConfig {
    /// The folder served at `/desktop/`; `None` serves nothing.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl DesktopConfig {
    /// Makes a relative `dir` relative to `base` (the configuration file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(dir) = &mut self.dir
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
    }

    /// Checks that the folder holds the page and the installed CometD library.
    pub fn validate(&self) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if !dir.join("index.html").is_file() {
            return Err(format!(
                "desktop folder {} has no index.html",
                dir.display()
            ));
        }
        if !dir.join(COMETD_MODULE).is_file() {
            return Err(format!(
                "desktop folder {} has no {COMETD_MODULE}: run `npm ci` in it",
                dir.display()
            ));
        }
        Ok(())
    }
}

/// Returns the router serving the folder at [`DESKTOP_PATH`], or an empty router when no
/// folder is configured.
pub fn router(config: &DesktopConfig) -> Router {
    let Some(dir) = &config.dir else {
        return Router::new();
    };
    // `/desktop` redirects so that the page's relative links (`desktop.js`) resolve.
    Router::new()
        .route(
            "/desktop",
            get(|| async { Redirect::permanent(DESKTOP_PATH) }),
        )
        .nest_service("/desktop/", ServeDir::new(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt as _;

    fn repo_desktop() -> DesktopConfig {
        DesktopConfig {
            dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("desktop")),
        }
    }

    async fn get_status(router: Router, path: &str) -> (StatusCode, Option<String>) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[tokio::test]
    async fn the_folder_is_served_under_desktop_and_the_bare_path_redirects() {
        let config = repo_desktop();
        let (status, _) = get_status(router(&config), "/desktop/").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get_status(router(&config), "/desktop/desktop.js").await;
        assert_eq!(status, StatusCode::OK);
        let (status, location) = get_status(router(&config), "/desktop").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(location.as_deref(), Some(DESKTOP_PATH));
        let (status, _) = get_status(router(&config), "/desktop/missing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = get_status(router(&config), "/desktop/../Cargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn without_a_folder_nothing_is_served() {
        let (status, _) = get_status(router(&DesktopConfig::default()), "/desktop/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_folder_without_the_page_or_the_library_is_refused() {
        let empty = DesktopConfig {
            dir: Some(std::env::temp_dir().join("voice-gateway-no-desktop")),
        };
        assert!(empty.validate().unwrap_err().contains("no index.html"));
        let src = DesktopConfig {
            dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("src")),
        };
        assert!(src.validate().is_err());
        assert!(DesktopConfig::default().validate().is_ok());
    }

    #[test]
    fn a_relative_folder_is_taken_from_the_config_folder() {
        let mut config: DesktopConfig = toml::from_str(r#"dir = "desktop""#).unwrap();
        config.resolve_paths(Path::new("/etc/gw"));
        assert_eq!(config.dir.as_deref(), Some(Path::new("/etc/gw/desktop")));
        assert!(toml::from_str::<DesktopConfig>(r#"folder = "x""#).is_err());
    }
}

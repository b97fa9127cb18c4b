//! Extractors of the legacy front-end whose rejections are GWS bodies: the JSON body, path
//! segments, `?fields=` / `?subresources=`, and the base URL resources are rendered with.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum_extra::extract::WithRejection;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::LegacyError;
use crate::app::AppState;
use crate::gws::base_url::{ListenerScheme, base_url};

/// A POST body: a JSON object, with 415/400/413 GWS errors for the wrong content type,
/// malformed JSON and oversized bodies.
pub type LegacyBody = WithRejection<Json<Map<String, Value>>, LegacyError>;

/// One path segment, with a GWS error if it does not decode.
pub type LegacyPath = WithRejection<Path<String>, LegacyError>;

/// The query string, with a GWS error if it does not decode.
pub type LegacyQuery = WithRejection<Query<HashMap<String, String>>, LegacyError>;

/// `scheme://host[:port]` of the links in a response, by the rules of
/// [`base_url`](crate::gws::base_url): the configured public URL, trusted proxy headers,
/// or the listener's scheme and the host the client addressed.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = LegacyError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, LegacyError> {
        let listener = ListenerScheme::of(&parts.extensions);
        Ok(Self(base_url(
            &state.config.legacy,
            &parts.uri,
            &parts.headers,
            listener,
        )))
    }
}

/// What a list GET returns (spec §5.3 `fields`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// No `fields`: the URIs of the resources.
    Uris,
    /// `fields=*`: the full resources.
    All,
    /// `fields=a,b`: the resources with only those fields.
    Only(Vec<String>),
}

impl Fields {
    /// Reads `fields` from the query.
    pub fn from_query(query: &HashMap<String, String>) -> Self {
        match query.get("fields").map(|f| f.trim()) {
            None | Some("") => Self::Uris,
            Some("*") => Self::All,
            Some(list) => Self::Only(split_list(list)),
        }
    }

    /// Renders a list reply: `{"statusCode":0,"uris":[...]}` or
    /// `{"statusCode":0,"<key>":[...]}`.
    pub fn reply<T: Serialize>(&self, key: &str, items: &[T], uris: Vec<String>) -> Json<Value> {
        let objects = match self {
            Self::Uris => return Json(json!({ "statusCode": 0, "uris": uris })),
            Self::All => items.iter().map(to_value).collect::<Vec<_>>(),
            Self::Only(names) => items
                .iter()
                .map(|item| match to_value(item) {
                    Value::Object(mut object) => {
                        object.retain(|k, _| names.iter().any(|n| n == k));
                        Value::Object(object)
                    }
                    other => other,
                })
                .collect(),
        };
        Json(json!({ "statusCode": 0, key: objects }))
    }
}

fn to_value<T: Serialize>(item: &T) -> Value {
    // The resource types serialize to objects of strings, numbers and arrays; this cannot fail.
    serde_json::to_value(item).unwrap_or(Value::Null)
}

/// Splits a comma list such as `devices,features`.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Item {
        id: &'static str,
        state: &'static str,
    }

    fn query(fields: &str) -> HashMap<String, String> {
        HashMap::from([("fields".to_owned(), fields.to_owned())])
    }

    #[test]
    fn fields_select_uris_objects_or_some_fields() {
        let items = [Item {
            id: "a",
            state: "Held",
        }];
        let uris = || vec!["http://h/a".to_owned()];
        let Json(v) = Fields::from_query(&HashMap::new()).reply("calls", &items, uris());
        assert_eq!(v, json!({"statusCode": 0, "uris": ["http://h/a"]}));
        let Json(v) = Fields::from_query(&query("*")).reply("calls", &items, uris());
        assert_eq!(
            v,
            json!({"statusCode": 0, "calls": [{"id": "a", "state": "Held"}]})
        );
        let Json(v) = Fields::from_query(&query("id")).reply("calls", &items, uris());
        assert_eq!(v, json!({"statusCode": 0, "calls": [{"id": "a"}]}));
    }
}

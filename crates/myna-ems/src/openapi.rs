//! The terminal API's OpenAPI document, generated from the handlers' attributes and the
//! `myna-wire` types (`myna-kyukyu openapi ems`; committed as `docs/openapi/ems-terminal.json`).
//! The desk and hospital screens are HTML for browsers, not part of it.

use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Myna Kyukyu ems terminal API",
        description = "The fire bureau's ems, as the ambulance tablets call it (docs/api.md)."
    ),
    paths(
        crate::api::whoami,
        crate::api::sign_in,
        crate::api::sign_out,
        crate::api::incidents,
        crate::api::incident,
        crate::api::event,
        crate::api::summary,
        crate::api::stream,
        crate::api::hospitals,
        crate::enroll::request,
        crate::enroll::status,
    ),
    modifiers(&Security),
)]
struct TerminalApi;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "terminal",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The terminal's bearer credential (`ems terminal add` prints it once), \
                         only where ems has no device CA (loopback, tests). With a device CA \
                         the terminal is the one bound to its client certificate \
                         (`terminal_certificate`) and bearer tokens are refused.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "terminal_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "The tablet's client certificate from the bureau's device CA, issued when \
                     an admin approved its enrollment (`/api/v1/enroll`)."
                        .into(),
                ),
                deprecated: None,
                extensions: None,
            },
        );
        components.add_security_scheme(
            "crew_session",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                myna_wire::terminal::CREW_SESSION_HEADER,
                "The crew member's session from sign-in, bound to the terminal.",
            ))),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    TerminalApi::openapi()
}

/// The document as committed: pretty JSON with a final newline.
pub fn json() -> Result<String, String> {
    myna_wire::openapi::committed_json(&document())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    const COMMITTED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi/ems-terminal.json"
    );

    /// The committed document is the one the code generates. `UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = super::json().unwrap();
        if let Err(e) = myna_wire::openapi::check_committed(
            COMMITTED,
            &generated,
            "cargo run -p myna-kyukyu -- openapi ems > docs/openapi/ems-terminal.json",
        ) {
            panic!("{e}");
        }
    }

    /// Read from the source of `myna_wire::terminal::route`, so a new constant there cannot
    /// be forgotten here or in the document.
    fn route_constants() -> Vec<(String, String)> {
        let source = include_str!("../../myna-wire/src/terminal.rs");
        let module = source
            .split_once("pub mod route {")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let module = module.split_once("\n}").map_or(module, |(m, _)| m);
        module
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let value = rest.split('"').nth(1)?;
                Some((name.trim().to_owned(), value.to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_route_constant_of_the_terminal_api_is_documented() {
        let routes = route_constants();
        assert!(routes.len() >= 11, "read {routes:?}");
        let doc = super::document();
        for (name, path) in &routes {
            assert!(
                doc.paths.paths.contains_key(path),
                "route::{name} ({path}) is not in the OpenAPI document"
            );
        }
        assert_eq!(
            doc.paths.paths.len(),
            routes.len(),
            "a documented path is no route"
        );
    }
}

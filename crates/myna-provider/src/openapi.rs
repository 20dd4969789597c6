//! The provider API's OpenAPI document, generated from the handlers' attributes and the
//! `myna-wire` types (`myna-kyukyu openapi provider`; committed as `docs/openapi/provider.json`).

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Myna Kyukyu provider API",
        description = "The national emergency-summary service, called by fire bureaus' ems servers, and the patient portal's access history, called by the patient's own portal with their card's signature (docs/api.md)."
    ),
    paths(crate::healthz, crate::summary::handle, crate::hospital_read::handle, crate::portal::challenge, crate::portal::history),
    modifiers(&Security),
)]
struct ProviderApi;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "organisation",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("<organisation id>.<secret>")
                    .description(Some(
                        "The calling organisation's bearer credential (`provider org add` \
                         prints it), only on a provider without an organisation CA (loopback, \
                         tests).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "organisation_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "The bureau's client certificate from the provider's organisation CA; its \
                     common name is the organisation id (`provider serve --client-ca`). A \
                     provider others can reach accepts only this."
                        .into(),
                ),
                deprecated: None,
                extensions: None,
            },
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ProviderApi::openapi()
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
        "/../../docs/openapi/provider.json"
    );

    /// The committed document is the one the code generates. `UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = super::json().unwrap();
        if let Err(e) = myna_wire::openapi::check_committed(
            COMMITTED,
            &generated,
            "cargo run -p myna-kyukyu -- openapi provider > docs/openapi/provider.json",
        ) {
            panic!("{e}");
        }
    }

    #[test]
    fn every_route_is_documented() {
        let doc = super::document();
        for path in [
            myna_wire::provider::SUMMARY_PATH,
            myna_wire::provider::HEALTHZ_PATH,
            myna_wire::provider::PORTAL_CHALLENGE_PATH,
            myna_wire::provider::PORTAL_HISTORY_PATH,
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
    }
}

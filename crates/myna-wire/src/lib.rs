//! The contract that crosses processes: the tablet (`terminal`) ↔ `ems`, and `ems` ↔ the
//! national `provider`. Bodies, error codes and routes are types here, so a new error code or
//! field is a compile error wherever it is not yet handled. No I/O and no server code: the
//! terminal depends on this crate, not on the services.

pub mod provider;
pub mod terminal;

pub use myna_domain::summary::View;

use serde::{Deserialize, Serialize};

/// Every error answer of both APIs: `{"error": {"code": …, "message": …}}`. `C` is the API's
/// code enum; the message is for people and may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody<C> {
    pub error: ErrorDetail<C>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail<C> {
    pub code: C,
    pub message: String,
}

impl<C> ErrorBody<C> {
    pub fn new(code: C, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

/// Declares an error-code enum: each variant with its wire text, `ALL`, `as_str`, and an
/// `Unknown` variant that a code from a newer peer decodes to.
macro_rules! wire_codes {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant,)*
            /// A code this build does not know (the peer is newer).
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown => "unknown",
                }
            }
        }

        // The schema lists the codes a server sends (`ALL`); `unknown` is only a client's
        // reading of a newer peer's code.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::ALL.iter().map(|c| c.as_str())))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_codes;

/// What the services' OpenAPI documents share: how one is written to `docs/openapi/`, and the
/// test that the committed file is the generated one.
#[cfg(feature = "openapi")]
pub mod openapi {
    /// A document as committed: pretty JSON with a final newline.
    pub fn committed_json(doc: &utoipa::openapi::OpenApi) -> Result<String, String> {
        doc.to_pretty_json()
            .map(|json| format!("{json}\n"))
            .map_err(|e| e.to_string())
    }

    /// Whether the committed `file` is `generated`; `UPDATE_GOLDEN` set rewrites it first. The
    /// error says how to refresh it (`refresh`).
    pub fn check_committed(file: &str, generated: &str, refresh: &str) -> Result<(), String> {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(file, generated).map_err(|e| format!("{file}: {e}"))?;
        }
        let committed = std::fs::read_to_string(file).unwrap_or_default();
        if committed == generated {
            Ok(())
        } else {
            Err(format!(
                "{file} is not the generated document; refresh it with\n  {refresh}\n\
                 (or set UPDATE_GOLDEN=1 and run the test)"
            ))
        }
    }
}

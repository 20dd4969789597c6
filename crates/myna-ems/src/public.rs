//! The bureau's public page (`/public/<code>`): what the seed's flyer tells citizens about
//! マイナ救急, in Japanese and English, built from the bureau's configuration (its name, its
//! viewing window, its contact), with no login. Made to be read on a phone.

use crate::Ems;
use crate::error::EmsError;
use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use myna_store::ems::EmsStore;
use std::sync::Arc;

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new().route("/public/{code}", get(page::<S>))
}

#[derive(Template)]
#[template(path = "public.html")]
struct PublicPage {
    name: String,
    contact: String,
    /// The viewing window after the call, in hours.
    window_hours: i64,
    /// How long the crew's copy is kept for the hospital, in hours (twice the window).
    kept_hours: i64,
}

async fn page<S: EmsStore>(State(ems): State<Arc<Ems<S>>>, Path(code): Path<String>) -> Response {
    let bureau = match ems.store.bureau(&code).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                "この消防本部のページはありません / No such fire bureau",
            )
                .into_response();
        }
        Err(e) => return EmsError::from(e).into_response(),
    };
    let window_hours = (bureau.view_window_s + 3599) / 3600;
    let contact = if bureau.public_contact.trim().is_empty() {
        bureau.name.clone()
    } else {
        bureau.public_contact.clone()
    };
    myna_web::page(&PublicPage {
        name: bureau.name,
        contact,
        window_hours,
        kept_hours: 2 * window_hours,
    })
}

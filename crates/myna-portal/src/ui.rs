//! The portal's screens: the start (place the card, type the PIN) and the history. Plain
//! forms, no script; every answer is `no-store`, and the history is shown once and dropped.

use crate::messages::{self, Message};
use crate::{Portal, PortalError};
use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use myna_card::Retries;
use myna_domain::access::Consent;
use myna_domain::portal::{sections, sha256_digest_info, signed_message, window_en, window_ja};
use myna_reader::sign::AuthPin;
use myna_web::own_window::{self, Guard};
use myna_wire::provider::{AccessHistoryRequest, AccessHistoryResponse, SeenAccessBody};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroize;

type St = State<Arc<Portal>>;

/// The portal's UI, behind `guard`.
pub fn router(portal: Arc<Portal>, guard: Arc<Guard>) -> Router {
    let app = Router::new()
        .route("/", get(start))
        .route("/sign-in", post(sign_in))
        .route("/healthz", get(|| async { "ok" }))
        .merge(myna_web::static_routes())
        .with_state(portal);
    own_window::guarded(app, guard)
}

/// The page's language: Japanese first, English for a foreign resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Lang {
    #[default]
    Ja,
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }
    fn pick(self, m: &Message) -> String {
        match self {
            Lang::Ja => m.ja.clone(),
            Lang::En => m.en.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<Lang>,
}

/// The start page's words for what the card says now.
struct Status {
    text: String,
    /// The card is locked: no form.
    locked: bool,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct Page {
    lang: &'static str,
    en: bool,
    status: Option<Status>,
    problem: Option<String>,
    history: Option<History>,
}

/// One access as a row of the history.
struct Row {
    when: String,
    organisation: String,
    /// For a hospital's read (then `organisation` is the hospital): whose crew passed it on.
    via: Option<String>,
    basis: String,
    exception: bool,
    sections: String,
    place: String,
}

struct History {
    rows: Vec<Row>,
    more: bool,
}

fn no_store(page: &Page) -> Response {
    let mut r = myna_web::page(page);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(lang: Lang) -> Page {
    Page {
        lang: lang.code(),
        en: lang == Lang::En,
        status: None,
        problem: None,
        history: None,
    }
}

async fn card_status(p: &Portal, lang: Lang) -> Status {
    let (ja, en, locked) = match p.card.pin_tries().await {
        Ok(Retries::Remaining(n)) => (
            format!("カードを読み取れます。暗証番号の残り回数: {n}回"),
            format!("The card is ready. PIN tries left: {n}"),
            false,
        ),
        Ok(Retries::Blocked) => {
            let m = messages::sign_failure(&myna_reader::sign::SignFailure::Locked);
            (m.ja, m.en, true)
        }
        Ok(Retries::Unlimited | Retries::NotReported) => (
            "カードを読み取れます。".to_owned(),
            "The card is ready.".to_owned(),
            false,
        ),
        Err(f) => {
            let m = messages::sign_failure(&f);
            (m.ja, m.en, false)
        }
    };
    Status {
        text: lang.pick(&Message { ja, en }),
        locked,
    }
}

async fn start(State(p): St, q: Result<Query<LangQuery>, QueryRejection>) -> Response {
    let lang = q.ok().and_then(|q| q.0.lang).unwrap_or_default();
    let mut page = page(lang);
    page.status = Some(card_status(&p, lang).await);
    no_store(&page)
}

#[derive(Deserialize)]
struct SignInForm {
    pin: TypedPin,
    lang: Option<Lang>,
}

/// The PIN as the form carried it, zeroed when dropped (whatever path the request takes).
#[derive(Deserialize)]
#[serde(transparent)]
struct TypedPin(String);

impl Drop for TypedPin {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

async fn sign_in(State(p): St, form: Result<Form<SignInForm>, FormRejection>) -> Response {
    let Ok(Form(form)) = form else {
        let mut page = page(Lang::Ja);
        page.problem = Some(messages::not_four_digits().ja);
        page.status = Some(card_status(&p, Lang::Ja).await);
        return no_store(&page);
    };
    let lang = form.lang.unwrap_or_default();
    let mut out = page(lang);
    let Ok(hold) = p.busy.clone().try_lock_owned() else {
        // Another sign-in is running (a double click, or a reload while the card works): this
        // one sends nothing; it waits for that one to end, then shows the card as it is now.
        let _ = tokio::time::timeout(Duration::from_secs(30), p.busy.clone().lock_owned()).await;
        out.problem = Some(lang.pick(&messages::busy()));
        out.status = Some(card_status(&p, lang).await);
        return no_store(&out);
    };
    match history(&p, &form.pin.0, hold).await {
        Ok(h) => out.history = Some(rows(&h, lang)),
        Err(m) => {
            out.problem = Some(lang.pick(&m));
            out.status = Some(card_status(&p, lang).await);
        }
    }
    no_store(&out)
}

/// The whole sign-in: the PIN's form, the provider's challenge, the card's signature, the
/// provider's answer.
async fn history(
    p: &Portal,
    typed_pin: &str,
    hold: tokio::sync::OwnedMutexGuard<()>,
) -> Result<AccessHistoryResponse, Message> {
    let pin = AuthPin::parse(typed_pin).map_err(|_| messages::not_four_digits())?;
    let refused = |e: PortalError| match e {
        PortalError::Offline(detail) => {
            tracing::warn!(%detail, "provider unreachable");
            messages::offline()
        }
        // The provider's message may name the card's serial: the code is enough here.
        PortalError::Refused { code, .. } => {
            tracing::warn!(?code, "provider refused the sign-in");
            messages::provider_refusal(code)
        }
    };
    let challenge = p.provider.challenge().await.map_err(refused)?;
    let raw = B64
        .decode(&challenge.challenge)
        .map_err(|_| messages::provider_refusal(myna_wire::provider::ProviderErrorCode::Unknown))?;
    let digest_info = sha256_digest_info(&signed_message(&raw)).to_vec();
    let signed = p
        .card
        .sign(pin, digest_info, hold)
        .await
        .map_err(|f| messages::sign_failure(&f))?;
    p.provider
        .history(&AccessHistoryRequest {
            certificate: B64.encode(&signed.certificate),
            challenge: challenge.challenge,
            signature: B64.encode(&signed.signature),
        })
        .await
        .map_err(refused)
}

/// Japan time, as each language writes a date.
fn when(ms: i64, lang: Lang) -> String {
    let format = match lang {
        Lang::Ja => "%Y年%-m月%-d日 %H:%M",
        Lang::En => "%Y-%m-%d %H:%M",
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .and_then(|t| t.checked_add_signed(chrono::Duration::hours(9)))
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

fn row(a: &SeenAccessBody, lang: Lang) -> Row {
    let (basis, exception) = match (a.consent, lang) {
        (Consent::Obtained, Lang::Ja) => ("同意あり".to_owned(), false),
        (Consent::Obtained, Lang::En) => ("with your consent".to_owned(), false),
        (Consent::Exception { reason }, Lang::Ja) => {
            (format!("同意なし（{}）", reason.label_ja()), true)
        }
        (Consent::Exception { reason }, Lang::En) => {
            (format!("without consent ({})", reason.label_en()), true)
        }
    };
    let sections = sections(a.view)
        .iter()
        .map(|(s, w)| match lang {
            Lang::Ja => format!("{}（{}）", s.label_ja(), window_ja(*w)),
            Lang::En => format!("{} ({})", s.label_en(), window_en(*w)),
        })
        .collect::<Vec<_>>()
        .join(match lang {
            Lang::Ja => "、",
            Lang::En => ", ",
        });
    let (organisation, via) = match (&a.hospital, lang) {
        (None, _) => (a.organisation.clone(), None),
        (Some(hospital), Lang::Ja) => (
            hospital.clone(),
            Some(format!(
                "{}の救急隊から搬送時に引き継いだ情報を閲覧",
                a.organisation
            )),
        ),
        (Some(hospital), Lang::En) => (
            hospital.clone(),
            Some(format!(
                "Read what the ambulance crew of {} passed on when bringing you in",
                a.organisation
            )),
        ),
    };
    Row {
        when: format!("{} JST", when(a.at_ms, lang)),
        organisation,
        via,
        basis,
        exception,
        sections,
        place: a.seq.to_string(),
    }
}

fn rows(h: &AccessHistoryResponse, lang: Lang) -> History {
    History {
        rows: h.accesses.iter().map(|a| row(a, lang)).collect(),
        more: h.more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_domain::summary::View;

    fn seen(hospital: Option<&str>) -> SeenAccessBody {
        SeenAccessBody {
            at_ms: 1_795_000_000_000,
            organisation_id: "kawasaki-fd".into(),
            organisation: "川崎市消防局".into(),
            hospital: hospital.map(str::to_owned),
            consent: Consent::Obtained,
            view: View::Summary,
            seq: 4,
        }
    }

    #[test]
    fn a_hospitals_read_names_the_hospital_and_the_bureau_that_passed_it_on() {
        let ja = row(&seen(Some("川崎市立川崎病院")), Lang::Ja);
        assert_eq!(ja.organisation, "川崎市立川崎病院");
        assert_eq!(
            ja.via.as_deref(),
            Some("川崎市消防局の救急隊から搬送時に引き継いだ情報を閲覧")
        );
        let en = row(&seen(Some("川崎市立川崎病院")), Lang::En);
        assert_eq!(en.organisation, "川崎市立川崎病院");
        assert!(
            en.via
                .as_deref()
                .is_some_and(|v| v.contains("川崎市消防局"))
        );
        let crew = row(&seen(None), Lang::Ja);
        assert_eq!(crew.organisation, "川崎市消防局");
        assert_eq!(crew.via, None);
    }
}

//! The tablet's state as one pure state machine: who is signed in, the team's incidents, the
//! card on the reader, the patients the crew has read, the summary on screen and the request
//! waiting for it, and the link. Every change is a method here; `ui` and `sync` only call them
//! and draw. No I/O, no clock: callers pass `Instant`s.
//!
//! The rule the screen keeps: a summary is shown only for the card it was asked for. Placing
//! another card ends it at once, from the screen and from memory.

use crate::card::{CardRead, CardState};
use myna_domain::hospitals::HospitalStatus;
use myna_wire::View;
use myna_wire::provider::SummaryResponse;
use myna_wire::terminal::{IncidentView, SignedIn};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The state of the link to `ems`, as the crew sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Unknown,
    Online,
    Offline { detail: String },
}

/// A summary request, kept until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRequest {
    pub incident: i64,
    /// The card's certificate: the request survives the card being handed back.
    pub der: Vec<u8>,
    pub serial: String,
    pub view: View,
    /// The outbox key of the consent tap that goes with this request (tap 2), if any.
    pub consent_key: Option<String>,
    /// Set while the link is down: the crew sees "waiting for the link".
    pub waiting_for_link: bool,
}

/// The summary on screen, in memory only, with the card and patient it is for.
#[derive(Debug, Clone)]
pub struct HeldSummary<R = SummaryResponse> {
    pub incident: i64,
    pub serial: String,
    pub patient: u32,
    pub response: R,
}

/// A message for the crew at the top of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub error: bool,
    pub text: String,
}

/// What the card step shows for the card on the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardStep {
    /// No card, reading, or a failed read.
    NoCard,
    /// Tap 1: the face check.
    Face,
    /// Tap 2: consent or the exception.
    Consent,
    /// This card's patient already consented to this team: one tap re-opens the summary.
    Reopen { patient: u32 },
    /// This card's patient withdrew consent.
    Withdrawn { patient: u32 },
    /// This card's patient refused consent.
    Refused { patient: u32 },
}

/// `R` is the summary's body; the tests use `()`, since no rule here reads it.
#[derive(Debug, Clone)]
pub struct Screen<R = SummaryResponse> {
    pub crew: Option<SignedIn>,
    pub incidents: Vec<IncidentView>,
    pub current: Option<i64>,
    pub card: CardState,
    /// Tap 1 was made for the card now on the reader.
    pub face_checked: bool,
    pub summary: Option<HeldSummary<R>>,
    pub request: Option<SummaryRequest>,
    /// The patient number ems gave each card read in an incident: (incident, serial) → 傷病者N.
    /// Serials are not medical data; they are forgotten with the shift.
    patients: HashMap<(i64, String), u32>,
    pub link: Link,
    pub notice: Option<Notice>,
    pub last_touch: Instant,
    /// The bureau's hospitals' acceptance statuses as ems last gave them (not medical data),
    /// and the bureau's age past which one is stale.
    pub hospital_statuses: Vec<HospitalStatus>,
    pub stale_after_minutes: Option<i64>,
    /// The vitals pad's open row, between its two taps.
    pub vitals_pad: Option<crate::vitals_pad::PadState>,
}

impl<R> Screen<R> {
    pub fn new(now: Instant) -> Self {
        Self {
            crew: None,
            incidents: Vec::new(),
            current: None,
            card: CardState::Empty,
            face_checked: false,
            summary: None,
            request: None,
            patients: HashMap::new(),
            link: Link::Unknown,
            notice: None,
            last_touch: now,
            hospital_statuses: Vec::new(),
            stale_after_minutes: None,
            vitals_pad: None,
        }
    }

    pub fn session(&self) -> Option<String> {
        self.crew.as_ref().map(|c| c.session.clone())
    }

    pub fn current_incident(&self) -> Option<&IncidentView> {
        let id = self.current?;
        self.incidents.iter().find(|i| i.id == id)
    }

    fn card_read(&self) -> Option<&CardRead> {
        match &self.card {
            CardState::Read(r) => Some(r),
            _ => None,
        }
    }

    /// The summary to draw: only the current incident's.
    pub fn visible_summary(&self) -> Option<&HeldSummary<R>> {
        self.summary
            .as_ref()
            .filter(|h| Some(h.incident) == self.current)
    }

    /// Drops everything medical and everything tied to the card.
    pub fn forget_patient(&mut self) {
        self.summary = None;
        self.request = None;
        self.face_checked = false;
    }

    /// A crew tap: the idle timer restarts and the last message goes.
    pub fn touch(&mut self, now: Instant) {
        self.last_touch = now;
        self.notice = None;
    }

    pub fn signed_in(&mut self, crew: SignedIn) {
        self.crew = Some(crew);
        self.notice = None;
    }

    /// Ends the crew's shift on this tablet: no crew, no incidents, nothing medical.
    pub fn end_shift(&mut self, notice: Notice) {
        self.crew = None;
        self.incidents.clear();
        self.current = None;
        self.patients.clear();
        self.forget_patient();
        self.notice = Some(notice);
    }

    /// What the reader reports. A new card (reading starts) ends the previous card's summary
    /// and request and restarts the taps; lifting the card keeps them, so the crew can hand
    /// the card back and read on.
    pub fn card_changed(&mut self, state: CardState) {
        match &state {
            CardState::Reading => self.forget_patient(),
            CardState::Read(r) => {
                let same = |serial: &str| serial == r.serial;
                // A read of another card without a lift in between (a reader can report that):
                // the face check was for the previous card.
                if let CardState::Read(previous) = &self.card
                    && previous.serial != r.serial
                {
                    self.face_checked = false;
                }
                if !self.summary.as_ref().is_none_or(|h| same(&h.serial)) {
                    self.summary = None;
                }
                if !self.request.as_ref().is_none_or(|q| same(&q.serial)) {
                    self.request = None;
                }
            }
            CardState::Empty | CardState::Failed(_) => self.face_checked = false,
        }
        self.card = state;
    }

    /// The patient ems named for a card in an incident (from the face check's answer).
    pub fn learn_patient(&mut self, incident: i64, serial: &str, patient: u32) {
        self.patients.insert((incident, serial.to_owned()), patient);
    }

    pub fn patient_of(&self, incident: i64, serial: &str) -> Option<u32> {
        self.patients.get(&(incident, serial.to_owned())).copied()
    }

    /// Which step the card on the reader is at.
    pub fn card_step(&self) -> CardStep {
        let (Some(card), Some(incident)) = (self.card_read(), self.current_incident()) else {
            return CardStep::NoCard;
        };
        if let Some(n) = self.patient_of(incident.id, &card.serial)
            && let Some(p) = incident.patient(n)
        {
            if p.withdrawn {
                return CardStep::Withdrawn { patient: n };
            }
            if p.refused {
                return CardStep::Refused { patient: n };
            }
            if p.identity_confirmed && p.consent.is_some() && !self.face_checked {
                return CardStep::Reopen { patient: n };
            }
        }
        if self.face_checked {
            CardStep::Consent
        } else {
            CardStep::Face
        }
    }

    /// The card on the reader, if it is the one the tap was made for.
    fn tapped_card(&self, serial: &str) -> Result<&CardRead, &'static str> {
        match self.card_read() {
            Some(r) if r.serial == serial => Ok(r),
            Some(_) => Err("カードが替わりました。画面を確認してからもう一度操作してください。"),
            None => Err("カードを読み取ってから確認してください。"),
        }
    }

    /// Tap 1 for the card on the reader (`serial`, as the page showed it); answers its
    /// certificate for the event.
    pub fn face_confirmed(&mut self, incident: i64, serial: &str) -> Result<Vec<u8>, &'static str> {
        self.check_current(incident)?;
        let der = self.tapped_card(serial)?.der.clone();
        self.face_checked = true;
        Ok(der)
    }

    /// 同意拒否 for the card on the reader; answers its certificate for the event.
    pub fn consent_refused(
        &mut self,
        incident: i64,
        serial: &str,
    ) -> Result<Vec<u8>, &'static str> {
        self.check_current(incident)?;
        if !self.face_checked {
            return Err("先に顔写真との照合を記録してください。");
        }
        let der = self.tapped_card(serial)?.der.clone();
        self.face_checked = false;
        Ok(der)
    }

    /// Tap 2: consent or the exception for the card on the reader. Makes the summary request
    /// that carries the consent tap `consent_key`; answers the certificate for the event.
    pub fn consent_given(
        &mut self,
        incident: i64,
        serial: &str,
        consent_key: String,
    ) -> Result<Option<Vec<u8>>, &'static str> {
        self.check_current(incident)?;
        if !self.face_checked {
            return Err("先に顔写真との照合を記録してください。");
        }
        if self.request.is_some() {
            return Ok(None);
        }
        let card = self.tapped_card(serial)?;
        let der = card.der.clone();
        self.request = Some(SummaryRequest {
            incident,
            der: der.clone(),
            serial: card.serial.clone(),
            view: View::Summary,
            consent_key: Some(consent_key),
            waiting_for_link: false,
        });
        Ok(Some(der))
    }

    /// Asks for a view of the card on the reader whose consent is already recorded: the
    /// re-open, or the full view of the summary on screen.
    pub fn view_again(
        &mut self,
        incident: i64,
        serial: &str,
        view: View,
    ) -> Result<(), &'static str> {
        self.check_current(incident)?;
        let card = self.tapped_card(serial)?;
        let summary_is_this_cards = self
            .visible_summary()
            .is_some_and(|h| h.serial == card.serial);
        if view == View::Full && !summary_is_this_cards {
            return Err("全量表示には、表示中のサマリーの本人のカードを置いてください。");
        }
        if self.request.is_none() {
            self.request = Some(SummaryRequest {
                incident,
                der: card.der.clone(),
                serial: card.serial.clone(),
                view,
                consent_key: None,
                waiting_for_link: false,
            });
        }
        Ok(())
    }

    /// The answer to `request`; shown only if the crew is still on that incident and the
    /// request was not ended by a card swap meanwhile.
    pub fn summary_arrived(
        &mut self,
        request: &SummaryRequest,
        patient: u32,
        response: R,
        now: Instant,
    ) {
        if self.request.as_ref() != Some(request) {
            return;
        }
        self.request = None;
        self.learn_patient(request.incident, &request.serial, patient);
        if self.current == Some(request.incident) && self.crew.is_some() {
            self.summary = Some(HeldSummary {
                incident: request.incident,
                serial: request.serial.clone(),
                patient,
                response,
            });
            self.notice = None;
            self.last_touch = now;
        }
    }

    /// The request was refused for good; the crew is told why.
    pub fn request_refused(&mut self, request: &SummaryRequest, text: String) {
        if self.request.as_ref() == Some(request) {
            self.request = None;
            self.face_checked = false;
        }
        self.notice = Some(Notice { error: true, text });
    }

    pub fn request_waiting(&mut self) {
        if let Some(r) = self.request.as_mut() {
            r.waiting_for_link = true;
        }
    }

    /// ems answered the request but the provider (or ems's storage) failed for now: the request
    /// waits, without its consent tap, which goes on its own in the outbox's order, so it does
    /// not hold up the taps queued behind it.
    pub fn request_failed_for_now(&mut self, failed: &SummaryRequest) {
        if let Some(r) = self.request.as_mut().filter(|r| **r == *failed) {
            r.waiting_for_link = true;
            r.consent_key = None;
        }
    }

    /// 同意撤回 of 傷病者 `patient`: their summary goes from the screen and memory now.
    pub fn consent_withdrawn(&mut self, incident: i64, patient: u32) -> Result<(), &'static str> {
        self.check_current(incident)?;
        if self
            .summary
            .as_ref()
            .is_some_and(|h| h.incident == incident && h.patient == patient)
        {
            self.summary = None;
        }
        let their_request = self
            .request
            .as_ref()
            .is_some_and(|r| self.patient_of(incident, &r.serial) == Some(patient));
        if their_request {
            self.request = None;
        }
        if let Some(card) = self.card_read()
            && self.patient_of(incident, &card.serial) == Some(patient)
        {
            self.face_checked = false;
        }
        Ok(())
    }

    /// The crew opens another of the team's incidents.
    pub fn open(&mut self, incident: i64) {
        if self.incidents.iter().any(|i| i.id == incident) && self.current != Some(incident) {
            self.current = Some(incident);
            self.forget_patient();
        }
    }

    /// A fresh copy of one incident from ems. A closed one leaves the tablet.
    pub fn incident_updated(&mut self, view: IncidentView) {
        let id = view.id;
        if view.closed {
            self.incident_gone(id);
        } else if let Some(slot) = self.incidents.iter_mut().find(|i| i.id == id) {
            *slot = view;
        } else {
            self.incidents.insert(0, view);
        }
    }

    /// The incident was closed or reassigned to another team.
    pub fn incident_gone(&mut self, id: i64) {
        self.incidents.retain(|i| i.id != id);
        self.patients.retain(|(i, _), _| *i != id);
        if self.current == Some(id) {
            self.current = None;
            self.forget_patient();
        }
    }

    /// The team's open incidents, as ems lists them.
    pub fn incidents_listed(&mut self, list: Vec<IncidentView>) {
        if let Some(cur) = self.current
            && !list.iter().any(|i| i.id == cur)
        {
            self.incident_gone(cur);
        }
        if self.current.is_none() {
            self.current = list.first().map(|i| i.id);
        }
        self.incidents = list;
    }

    /// Drops the summary after `idle` without a touch; true if it did.
    pub fn idle_check(&mut self, now: Instant, idle: Duration) -> bool {
        if self.summary.is_some() && now.duration_since(self.last_touch) >= idle {
            self.forget_patient();
            self.notice = Some(Notice {
                error: false,
                text: "一定時間操作がなかったため、サマリーを画面から消去しました".into(),
            });
            return true;
        }
        false
    }

    pub fn check_current(&self, incident: i64) -> Result<(), &'static str> {
        if self.crew.is_none() {
            return Err("サインインし直してください（勤務交代・期限切れ）。");
        }
        if self.current != Some(incident) {
            return Err("この事案は表示中ではありません。");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use myna_domain::access::Consent;
    use myna_wire::terminal::{PatientView, TerminalInfo};

    fn signed_in() -> SignedIn {
        SignedIn {
            session: "s".into(),
            crew_login: "crew10".into(),
            crew_name: "中原 一".into(),
            expires_ms: 0,
            terminal: TerminalInfo {
                terminal_id: 1,
                label: "t".into(),
                bureau: "kawasaki-fd".into(),
                team_id: 10,
                team_name: "中原救急1".into(),
            },
        }
    }

    fn incident(id: i64, patients: Vec<PatientView>) -> IncidentView {
        IncidentView {
            id,
            number: format!("20261126-{id:04}"),
            location: "川崎市".into(),
            category: myna_domain::incident::ComplaintCategory::Trauma,
            category_ja: "外傷".into(),
            note: String::new(),
            card_prep_requested: false,
            team_id: Some(10),
            team_name: Some("中原救急1".into()),
            phases: Vec::new(),
            patients,
            outcome: None,
            viewed: false,
            inquiries: vec![],
            difficult_transport: false,
            destination: None,
            vitals: None,
            handoff: None,
            closed: false,
            events: 2,
        }
    }

    fn consented(number: u32) -> PatientView {
        PatientView {
            number,
            identity_confirmed: true,
            consent: Some(Consent::Obtained),
            withdrawn: false,
            refused: false,
            viewed: true,
        }
    }

    fn card(serial: &str) -> CardState {
        CardState::Read(CardRead {
            der: serial.as_bytes().to_vec(),
            serial: serial.into(),
            apdus: 3,
            millis: 80,
        })
    }

    /// Signed in, incident 1 open, card A read, face and consent tapped, A's summary shown.
    fn showing_a() -> Screen<()> {
        let now = Instant::now();
        let mut s = Screen::<()>::new(now);
        s.signed_in(signed_in());
        s.incidents_listed(vec![incident(1, vec![])]);
        s.card_changed(CardState::Reading);
        s.card_changed(card("AAAA"));
        assert_eq!(s.card_step(), CardStep::Face);
        s.face_confirmed(1, "AAAA").unwrap();
        assert_eq!(s.card_step(), CardStep::Consent);
        s.consent_given(1, "AAAA", "k-consent".into()).unwrap();
        let req = s.request.clone().unwrap();
        s.summary_arrived(&req, 1, (), now);
        s.incident_updated(incident(1, vec![consented(1)]));
        assert!(s.visible_summary().is_some());
        s
    }

    #[test]
    fn placing_another_card_ends_the_summary_and_restarts_the_taps() {
        let mut s = showing_a();
        s.card_changed(CardState::Empty);
        assert!(
            s.visible_summary().is_some(),
            "handing the card back keeps it"
        );
        s.card_changed(CardState::Reading);
        assert!(
            s.summary.is_none(),
            "a new card drops the summary from memory"
        );
        assert!(s.request.is_none());
        s.card_changed(card("BBBB"));
        assert_eq!(s.card_step(), CardStep::Face, "B starts with tap 1");
        assert_eq!(
            s.view_again(1, "BBBB", View::Full),
            Err("全量表示には、表示中のサマリーの本人のカードを置いてください。"),
            "no full view of B without B's own taps"
        );
        assert!(
            s.view_again(1, "AAAA", View::Full).is_err(),
            "nor of A from a stale button"
        );
        assert!(s.request.is_none());
    }

    #[test]
    fn a_read_of_another_card_without_a_reading_state_still_ends_the_summary() {
        let mut s = showing_a();
        s.card_changed(card("BBBB"));
        assert!(s.summary.is_none());
    }

    #[test]
    fn a_stale_tap_for_the_previous_card_is_refused() {
        let mut s = showing_a();
        s.card_changed(card("BBBB"));
        assert!(
            s.face_confirmed(1, "AAAA").is_err(),
            "the page still showed A"
        );
        assert!(!s.face_checked);
        s.face_confirmed(1, "BBBB").unwrap();
        // B straight to C, no lift: the face check was B's.
        s.card_changed(card("CCCC"));
        assert!(!s.face_checked);
        assert!(s.consent_given(1, "CCCC", "k".into()).is_err());
    }

    #[test]
    fn an_answer_for_a_swapped_card_is_not_shown() {
        let now = Instant::now();
        let mut s = showing_a();
        s.card_changed(CardState::Reading);
        s.card_changed(card("AAAA"));
        s.view_again(1, "AAAA", View::Summary).unwrap();
        let req = s.request.clone().unwrap();
        s.card_changed(CardState::Reading);
        s.card_changed(card("BBBB"));
        s.summary_arrived(&req, 1, (), now);
        assert!(
            s.summary.is_none(),
            "A's late answer does not appear under B's card"
        );
    }

    #[test]
    fn placing_a_consented_card_again_reopens_with_one_tap() {
        let mut s = showing_a();
        s.card_changed(CardState::Reading);
        s.card_changed(card("AAAA"));
        assert_eq!(s.card_step(), CardStep::Reopen { patient: 1 });
        s.view_again(1, "AAAA", View::Summary).unwrap();
        assert_eq!(s.request.as_ref().unwrap().consent_key, None);
    }

    #[test]
    fn withdrawing_drops_that_patients_summary_at_once() {
        let mut s = showing_a();
        s.consent_withdrawn(1, 1).unwrap();
        assert!(s.summary.is_none());
        let mut withdrawn = consented(1);
        withdrawn.withdrawn = true;
        s.incident_updated(incident(1, vec![withdrawn]));
        assert_eq!(s.card_step(), CardStep::Withdrawn { patient: 1 });
    }

    #[test]
    fn the_full_view_needs_the_summary_patients_card_on_the_reader() {
        let mut s = showing_a();
        s.view_again(1, "AAAA", View::Full).unwrap();
        assert_eq!(s.request.as_ref().unwrap().view, View::Full);
    }

    #[test]
    fn consent_needs_the_face_check_and_the_current_incident() {
        let now = Instant::now();
        let mut s = Screen::<()>::new(now);
        assert!(s.face_confirmed(1, "AAAA").is_err(), "not signed in");
        s.signed_in(signed_in());
        s.incidents_listed(vec![incident(1, vec![]), incident(2, vec![])]);
        s.card_changed(card("AAAA"));
        assert!(
            s.consent_given(1, "AAAA", "k".into()).is_err(),
            "no face check yet"
        );
        assert!(
            s.face_confirmed(2, "AAAA").is_err(),
            "incident 2 is not on screen"
        );
        s.face_confirmed(1, "AAAA").unwrap();
        s.card_changed(CardState::Empty);
        assert!(
            s.consent_given(1, "AAAA", "k".into()).is_err(),
            "the face check ends with the card"
        );
    }

    #[test]
    fn a_refused_request_ends_with_a_message_and_a_waiting_one_stays_for_the_link() {
        let now = Instant::now();
        let mut s = Screen::<()>::new(now);
        s.signed_in(signed_in());
        s.incidents_listed(vec![incident(1, vec![])]);
        s.card_changed(card("AAAA"));
        s.face_confirmed(1, "AAAA").unwrap();
        s.consent_given(1, "AAAA", "k".into()).unwrap();
        s.request_waiting();
        let req = s.request.clone().unwrap();
        assert!(req.waiting_for_link);
        s.card_changed(CardState::Empty);
        assert_eq!(
            s.request.as_ref(),
            Some(&req),
            "handing the card back keeps the request"
        );
        s.request_refused(&req, "refused".into());
        assert!(s.request.is_none());
        assert_eq!(s.notice.as_ref().map(|n| n.error), Some(true));
        assert_eq!(s.card_step(), CardStep::NoCard);
    }

    #[test]
    fn a_provider_outage_sends_the_consent_on_its_own_and_keeps_the_request() {
        let now = Instant::now();
        let mut s = Screen::<()>::new(now);
        s.signed_in(signed_in());
        s.incidents_listed(vec![incident(1, vec![])]);
        s.card_changed(card("AAAA"));
        s.face_confirmed(1, "AAAA").unwrap();
        s.consent_given(1, "AAAA", "k".into()).unwrap();
        assert_eq!(
            s.request.as_ref().unwrap().consent_key.as_deref(),
            Some("k")
        );
        let other = SummaryRequest {
            serial: "BBBB".into(),
            ..s.request.clone().unwrap()
        };
        s.request_failed_for_now(&other);
        assert!(
            s.request.as_ref().unwrap().consent_key.is_some(),
            "another request's failure changes nothing"
        );
        let failed = s.request.clone().unwrap();
        s.request_failed_for_now(&failed);
        let req = s.request.as_ref().unwrap();
        assert!(req.waiting_for_link);
        assert_eq!(
            req.consent_key, None,
            "the queued consent no longer waits for it"
        );
    }

    #[test]
    fn opening_another_incident_drops_the_patient_and_a_listing_keeps_the_current_one() {
        let mut s = showing_a();
        s.incidents_listed(vec![incident(2, vec![]), incident(1, vec![consented(1)])]);
        assert_eq!(s.current, Some(1), "the incident on screen stays on screen");
        assert!(s.visible_summary().is_some());
        s.open(2);
        assert_eq!(s.current, Some(2));
        assert!(s.summary.is_none() && s.request.is_none() && !s.face_checked);
        s.open(99);
        assert_eq!(
            s.current,
            Some(2),
            "an incident not in the list is not opened"
        );
        s.incidents_listed(vec![incident(1, vec![])]);
        assert_eq!(
            s.current,
            Some(1),
            "a vanished current incident gives way to the first"
        );
    }

    #[test]
    fn closing_or_reassigning_the_incident_and_ending_the_shift_drop_everything() {
        let mut s = showing_a();
        s.incident_gone(1);
        assert!(s.summary.is_none() && s.current.is_none());
        let mut s = showing_a();
        s.end_shift(Notice {
            error: false,
            text: "x".into(),
        });
        assert!(s.summary.is_none() && s.crew.is_none() && s.patient_of(1, "AAAA").is_none());
        let mut s = showing_a();
        let later = s.last_touch + Duration::from_secs(601);
        assert!(s.idle_check(later, Duration::from_secs(600)));
        assert!(s.summary.is_none());
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Hospital selection: the registry, the criteria table and the ranking, attacked the way a
//! crew would meet them: a closer hospital that cannot take the patient, a かかりつけ further
//! away, a decline, a stale or refusing status, a patient on an anticoagulant.

use chrono::{DateTime, Duration, Utc};
use myna_domain::hospitals::*;
use myna_domain::incident::ComplaintCategory;
use proptest::prelude::*;
use std::collections::HashMap;

fn now() -> DateTime<Utc> {
    "2026-11-26T03:00:00Z".parse().unwrap()
}

/// 武蔵小杉駅 (中原区), roughly.
const KOSUGI: GeoPoint = GeoPoint {
    lat: 35.5765,
    lon: 139.6595,
};

fn all_accepting(registry: &Registry, at: DateTime<Utc>) -> HashMap<String, HospitalStatus> {
    registry
        .hospitals()
        .iter()
        .map(|h| (h.id.clone(), HospitalStatus::accepting_everything(h, at)))
        .collect()
}

struct Case {
    category: ComplaintCategory,
    alerts: Vec<String>,
    kakaritsuke: Vec<Kakaritsuke>,
    declined: Vec<String>,
    statuses: HashMap<String, HospitalStatus>,
}

impl Case {
    fn new(category: ComplaintCategory) -> Self {
        let registry = Registry::kawasaki().unwrap();
        Case {
            category,
            alerts: vec![],
            kakaritsuke: vec![],
            declined: vec![],
            statuses: all_accepting(&registry, now()),
        }
    }

    fn rank(&self) -> Vec<Ranked> {
        let registry = Registry::kawasaki().unwrap();
        let criteria = Criteria::builtin().unwrap();
        rank(
            &registry,
            &criteria,
            &RankRequest {
                from: KOSUGI,
                category: self.category,
                alert_classes: &self.alerts,
                kakaritsuke: &self.kakaritsuke,
                declined: &self.declined,
                statuses: &self.statuses,
                now: now(),
            },
        )
    }
}

fn position(r: &[Ranked], id: &str) -> usize {
    r.iter().position(|x| x.hospital_id == id).unwrap()
}

fn get<'a>(r: &'a [Ranked], id: &str) -> &'a Ranked {
    &r[position(r, id)]
}

#[test]
fn the_registry_names_its_sources_and_marks_what_is_approximate() {
    let registry = Registry::kawasaki().unwrap();
    assert_eq!(registry.hospitals().len(), 12);
    for h in registry.hospitals() {
        assert!(!h.source.is_empty(), "{}", h.id);
        // Coordinates come from street addresses, not a survey.
        assert!(h.approximate.iter().any(|f| f == "lat"), "{}", h.id);
        assert!(!h.capabilities.is_empty(), "{}", h.id);
    }
    let tertiary = registry
        .hospitals()
        .iter()
        .filter(|h| h.level == Level::Tertiary)
        .count();
    assert_eq!(tertiary, 3);
    // Bad rows are refused with their row number.
    let bad = "id,name,ward,institution_code,lat,lon,level,capabilities,approximate,source\n\
               x,X,川崎区,1419800001,35.5,139.7,tertiary,teleport,lat,s\n";
    let err = Registry::from_csv(bad).unwrap_err().to_string();
    assert!(err.contains("row 2"), "{err}");
    let far = "id,name,ward,institution_code,lat,lon,level,capabilities,approximate,source\n\
               x,X,川崎区,1419800001,43.0,141.3,tertiary,trauma,lat,s\n";
    assert!(Registry::from_csv(far).is_err());
    // An id goes into the tablet's buttons: nothing but lower-case letters, digits and '-'.
    let quote = "id,name,ward,institution_code,lat,lon,level,capabilities,approximate,source\n\
                 \"x\"\"y\",X,川崎区,1419800001,35.5,139.7,tertiary,trauma,lat,s\n";
    assert!(Registry::from_csv(quote).is_err());
}

#[test]
fn the_criteria_table_covers_every_category_once() {
    let criteria = Criteria::builtin().unwrap();
    for c in ComplaintCategory::ALL {
        assert_eq!(
            criteria
                .categories
                .iter()
                .filter(|r| r.category == c)
                .count(),
            1
        );
    }
    let mut text = include_str!("../data/transport-criteria.toml").to_owned();
    text = text.replace("category = \"fever\"", "category = \"trauma\"");
    assert!(
        Criteria::from_toml(&text).is_err(),
        "a missing category is refused"
    );
}

#[test]
fn eta_is_straight_line_times_circuity_over_speed() {
    let criteria = Criteria::builtin().unwrap();
    assert!((criteria.eta.minutes(0.0) - 1.0).abs() < 1e-9);
    assert!((criteria.eta.minutes(10.0) - 27.0).abs() < 1e-9);
    // 武蔵小杉 to 川崎駅 is about 6 km.
    let kawasaki_station = GeoPoint {
        lat: 35.5313,
        lon: 139.6969,
    };
    let km = KOSUGI.km_to(kawasaki_station);
    assert!((5.5..6.5).contains(&km), "{km}");
}

#[test]
fn a_stroke_goes_to_a_stroke_hospital_not_the_nearest() {
    let r = Case::new(ComplaintCategory::StrokeSuspected).rank();
    let first = registry_hospital(&r[0].hospital_id);
    assert!(first.capabilities.contains(&Capability::Stroke));
    assert!(r[0].eligible);
    // 井田病院 has no stroke care: it ranks among the ineligible, and says why.
    let ida = get(&r, "ida-municipal");
    assert!(!ida.eligible);
    assert!(ida.reason_ja.contains("対応なし"), "{}", ida.reason_ja);
    for x in &r {
        assert!(x.reason_ja.starts_with(&format!("{}分", x.eta_minutes)));
    }
}

fn registry_hospital(id: &str) -> Hospital {
    Registry::kawasaki().unwrap().get(id).unwrap().clone()
}

fn regular(id: &str, visits: u32) -> Kakaritsuke {
    Kakaritsuke {
        institution_code: registry_hospital(id).institution_code,
        last_visit: "2026-10-03".parse().unwrap(),
        visits,
    }
}

#[test]
fn a_kakaritsuke_hospital_moves_up_and_says_so() {
    let mut case = Case::new(ComplaintCategory::AbdominalPain);
    let without = case.rank();
    assert_eq!(
        without[0].hospital_id, "nms-musashikosugi",
        "the nearest first"
    );
    case.kakaritsuke = vec![regular("kanto-rosai", 6)];
    let with = case.rank();
    assert_eq!(with[0].hospital_id, "kanto-rosai");
    assert!(
        with[0].reason_ja.contains("かかりつけ（2026-10-03受診）"),
        "{}",
        with[0].reason_ja
    );
    // One visit does not make a かかりつけ, and only the most visited one counts.
    case.kakaritsuke = vec![regular("kanto-rosai", 1)];
    assert_eq!(case.rank()[0].hospital_id, "nms-musashikosugi");
    case.kakaritsuke = vec![regular("nms-musashikosugi", 9), regular("kanto-rosai", 6)];
    let r = case.rank();
    assert!(!get(&r, "kanto-rosai").reason_ja.contains("かかりつけ"));
}

#[test]
fn when_minutes_decide_the_kakaritsuke_is_named_but_not_preferred() {
    let mut case = Case::new(ComplaintCategory::ChestPain);
    case.kakaritsuke = vec![regular("kanto-rosai", 6)];
    let r = case.rank();
    assert_eq!(
        r[0].hospital_id, "nms-musashikosugi",
        "the nearest PCI hospital first"
    );
    assert!(get(&r, "kanto-rosai").reason_ja.contains("かかりつけ"));
}

#[test]
fn with_no_stated_need_a_hospital_refusing_everything_is_not_eligible() {
    let mut case = Case::new(ComplaintCategory::Other);
    for (_, a) in &mut case
        .statuses
        .get_mut("nms-musashikosugi")
        .unwrap()
        .capabilities
    {
        *a = Acceptance::NotAccepting;
    }
    let r = case.rank();
    let nms = get(&r, "nms-musashikosugi");
    assert!(!nms.eligible, "{}", nms.reason_ja);
    assert!(nms.reason_ja.contains("受入不可"));
}

#[test]
fn a_hospital_that_declined_goes_last() {
    let mut case = Case::new(ComplaintCategory::ChestPain);
    case.declined = vec!["nms-musashikosugi".into()];
    let r = case.rank();
    let last = r.last().unwrap();
    assert_eq!(last.hospital_id, "nms-musashikosugi");
    assert!(!last.eligible);
    assert!(last.reason_ja.contains("辞退済み"));
}

#[test]
fn refusing_limited_stale_and_unknown_statuses() {
    let mut case = Case::new(ComplaintCategory::ChestPain);
    let set = |case: &mut Case, id: &str, a: Acceptance, age_min: i64| {
        let s = case.statuses.get_mut(id).unwrap();
        for (_, acc) in &mut s.capabilities {
            *acc = a;
        }
        s.updated_at = now() - Duration::minutes(age_min);
    };
    set(&mut case, "nms-musashikosugi", Acceptance::NotAccepting, 5);
    set(&mut case, "kanto-rosai", Acceptance::Limited, 5);
    set(&mut case, "ida-municipal", Acceptance::Accepting, 300);
    case.statuses.remove("kawasaki-saiwai");
    let r = case.rank();
    let nms = get(&r, "nms-musashikosugi");
    assert!(!nms.eligible && nms.reason_ja.contains("受入不可: 循環器（PCI）"));
    assert!(get(&r, "kanto-rosai").reason_ja.contains("制限あり"));
    assert!(get(&r, "ida-municipal").reason_ja.contains("情報300分前"));
    assert!(
        get(&r, "kawasaki-saiwai")
            .reason_ja
            .contains("応需情報なし")
    );
    // Ineligible hospitals come after every eligible one.
    let first_ineligible = r.iter().position(|x| !x.eligible).unwrap();
    assert!(r[first_ineligible..].iter().all(|x| !x.eligible));
}

#[test]
fn trauma_on_an_anticoagulant_needs_a_hospital_that_can_reverse_it() {
    let mut case = Case::new(ComplaintCategory::Trauma);
    let plain = case.rank();
    assert!(
        get(&plain, "takatsu-chuo").eligible,
        "trauma alone: any trauma hospital"
    );
    case.alerts = vec!["doac".into()];
    let r = case.rank();
    let takatsu = get(&r, "takatsu-chuo");
    assert!(!takatsu.eligible);
    assert!(
        takatsu.reason_ja.contains("抗凝固薬の拮抗"),
        "{}",
        takatsu.reason_ja
    );
    assert!(
        r[0].reason_ja.contains("抗凝固薬の拮抗可"),
        "{}",
        r[0].reason_ja
    );
    for x in r.iter().filter(|x| x.eligible) {
        assert!(
            registry_hospital(&x.hospital_id)
                .capabilities
                .contains(&Capability::AnticoagReversal)
        );
    }
}

#[test]
fn a_dialysis_patient_prefers_a_dialysis_hospital() {
    let mut case = Case::new(ComplaintCategory::Fever);
    case.alerts = vec!["dialysis".into()];
    let r = case.rank();
    assert!(r[0].reason_ja.contains("透析"), "{}", r[0].reason_ja);
}

fn any_category() -> impl Strategy<Value = ComplaintCategory> {
    prop::sample::select(ComplaintCategory::ALL.to_vec())
}

proptest! {
    /// Whatever the inputs: every hospital appears once, eligible ones first and in score
    /// order, each with a reason, and the same inputs give the same order.
    #[test]
    fn the_ranking_is_a_total_explained_order(
        category in any_category(),
        lat in 35.50..35.65f64,
        lon in 139.48..139.75f64,
        declined_mask in 0u16..4096,
        refused_mask in 0u16..4096,
        anticoag in any::<bool>(),
    ) {
        let registry = Registry::kawasaki().unwrap();
        let criteria = Criteria::builtin().unwrap();
        let mut statuses = all_accepting(&registry, now());
        let ids: Vec<String> = registry.hospitals().iter().map(|h| h.id.clone()).collect();
        for (i, id) in ids.iter().enumerate() {
            if refused_mask & (1 << i) != 0 {
                for (_, a) in &mut statuses.get_mut(id).unwrap().capabilities {
                    *a = Acceptance::NotAccepting;
                }
            }
        }
        let declined: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| declined_mask & (1 << i) != 0)
            .map(|(_, id)| id.clone())
            .collect();
        let alerts: Vec<String> = if anticoag { vec!["vka".into()] } else { vec![] };
        let req = RankRequest {
            from: GeoPoint { lat, lon },
            category,
            alert_classes: &alerts,
            kakaritsuke: &[],
            declined: &declined,
            statuses: &statuses,
            now: now(),
        };
        let r = rank(&registry, &criteria, &req);
        let mut seen: Vec<String> = r.iter().map(|x| x.hospital_id.clone()).collect();
        seen.sort();
        let mut all = ids.clone();
        all.sort();
        prop_assert_eq!(seen, all);
        let split = r.iter().position(|x| !x.eligible).unwrap_or(r.len());
        prop_assert!(r[split..].iter().all(|x| !x.eligible));
        prop_assert!(r[..split].windows(2).all(|w| w[0].score <= w[1].score));
        for x in &r {
            prop_assert!(!x.reason_ja.is_empty());
            if declined.contains(&x.hospital_id) {
                prop_assert!(!x.eligible && x.reason_ja.contains("辞退済み"));
            }
        }
        prop_assert_eq!(&r, &rank(&registry, &criteria, &req));
    }
}

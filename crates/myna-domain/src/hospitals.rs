//! 搬送先選定 (hospital selection): the registry of emergency hospitals, their acceptance
//! status, the transport criteria table, and the ranking, with one reason line per rank.
//!
//! Pure: the caller passes the crew's position, "now", the statuses it holds and the patient's
//! summary-derived inputs (alert classes, かかりつけ). The registry and the criteria are data
//! files (`data/hospitals-kawasaki.csv`, `data/transport-criteria.toml`), each with its source.

use crate::incident::ComplaintCategory;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

const REGISTRY_CSV: &str = include_str!("../data/hospitals-kawasaki.csv");
const CRITERIA_TOML: &str = include_str!("../data/transport-criteria.toml");

/// A point on the map (WGS 84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    /// Great-circle distance in km (haversine; the earth as a sphere of radius 6,371 km).
    pub fn km_to(self, other: GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6371.0 * a.sqrt().min(1.0).asin()
    }
}

/// What a hospital can take. 診療科・対応能力 as the criteria tables name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    CardiacArrest,
    Stroke,
    Neurosurgery,
    Cardiology,
    Trauma,
    /// Can reverse anticoagulation (PCC, idarucizumab, andexanet alfa on hand).
    AnticoagReversal,
    InternalMedicine,
    Surgery,
    Pediatrics,
    Obstetrics,
    Dialysis,
}

impl Capability {
    pub const ALL: [Capability; 11] = [
        Capability::CardiacArrest,
        Capability::Stroke,
        Capability::Neurosurgery,
        Capability::Cardiology,
        Capability::Trauma,
        Capability::AnticoagReversal,
        Capability::InternalMedicine,
        Capability::Surgery,
        Capability::Pediatrics,
        Capability::Obstetrics,
        Capability::Dialysis,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Capability::CardiacArrest => "心肺停止",
            Capability::Stroke => "脳卒中",
            Capability::Neurosurgery => "脳神経外科",
            Capability::Cardiology => "循環器（PCI）",
            Capability::Trauma => "外傷",
            Capability::AnticoagReversal => "抗凝固薬の拮抗",
            Capability::InternalMedicine => "内科",
            Capability::Surgery => "外科",
            Capability::Pediatrics => "小児科",
            Capability::Obstetrics => "産科",
            Capability::Dialysis => "透析",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::CardiacArrest => "cardiac_arrest",
            Capability::Stroke => "stroke",
            Capability::Neurosurgery => "neurosurgery",
            Capability::Cardiology => "cardiology",
            Capability::Trauma => "trauma",
            Capability::AnticoagReversal => "anticoag_reversal",
            Capability::InternalMedicine => "internal_medicine",
            Capability::Surgery => "surgery",
            Capability::Pediatrics => "pediatrics",
            Capability::Obstetrics => "obstetrics",
            Capability::Dialysis => "dialysis",
        }
    }
}

/// 救急医療の体制: 三次 (救命救急センター) or 二次.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Tertiary,
    Secondary,
}

impl Level {
    pub fn label_ja(self) -> &'static str {
        match self {
            Level::Tertiary => "三次（救命救急センター）",
            Level::Secondary => "二次",
        }
    }
}

/// An emergency hospital of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hospital {
    /// Stable id, e.g. `kawasaki-municipal`.
    pub id: String,
    pub name: String,
    pub ward: String,
    /// 医療機関番号 (synthetic in this registry, matching the synthetic claims).
    pub institution_code: String,
    pub location: GeoPoint,
    pub level: Level,
    pub capabilities: Vec<Capability>,
    /// Fields whose value is approximate (`lat`, `lon`, `level`, `ward`, `capabilities`).
    pub approximate: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("hospital registry row {row}: {problem}")]
    Row { row: usize, problem: String },
    #[error("transport criteria: {0}")]
    Criteria(String),
}

#[derive(Debug, Deserialize)]
struct RegistryRow {
    id: String,
    name: String,
    ward: String,
    institution_code: String,
    lat: f64,
    lon: f64,
    level: Level,
    capabilities: String,
    approximate: String,
    source: String,
}

/// The hospitals a bureau transports to.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    hospitals: Vec<Hospital>,
}

impl Registry {
    /// Kawasaki's emergency hospitals, compiled in.
    pub fn kawasaki() -> Result<Self, RegistryError> {
        Self::from_csv(REGISTRY_CSV)
    }

    /// The compiled-in registry, parsed once per process.
    pub fn shared() -> Result<&'static Registry, RegistryError> {
        static SHARED: std::sync::OnceLock<Result<Registry, RegistryError>> =
            std::sync::OnceLock::new();
        SHARED
            .get_or_init(Registry::kawasaki)
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn from_csv(text: &str) -> Result<Self, RegistryError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut hospitals: Vec<Hospital> = Vec::new();
        for (i, row) in reader.deserialize::<RegistryRow>().enumerate() {
            let row_no = i + 2;
            let bad = |problem: String| RegistryError::Row {
                row: row_no,
                problem,
            };
            let r = row.map_err(|e| bad(e.to_string()))?;
            let in_kawasaki = (35.45..35.70).contains(&r.lat) && (139.40..139.80).contains(&r.lon);
            if !in_kawasaki {
                return Err(bad(format!("{} is not in Kawasaki", r.id)));
            }
            let capabilities = r
                .capabilities
                .split(';')
                .map(|c| {
                    Capability::parse(c.trim()).ok_or_else(|| bad(format!("capability {c:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let id_ok = !r.id.is_empty()
                && r.id.len() <= 64
                && r.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return Err(bad(format!(
                    "id {:?}: lower-case letters, digits and '-'",
                    r.id
                )));
            }
            if r.institution_code.len() != 10
                || !r.institution_code.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad(format!("医療機関番号 {:?}", r.institution_code)));
            }
            if hospitals
                .iter()
                .any(|h| h.id == r.id || h.institution_code == r.institution_code)
            {
                return Err(bad(format!("{} appears twice", r.id)));
            }
            let approximate: Vec<String> = r
                .approximate
                .split(';')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(f) = approximate
                .iter()
                .find(|f| !["lat", "lon", "level", "ward", "capabilities"].contains(&f.as_str()))
            {
                return Err(bad(format!("unknown approximate field {f:?}")));
            }
            if r.source.trim().is_empty() {
                return Err(bad("no source".into()));
            }
            hospitals.push(Hospital {
                id: r.id,
                name: r.name,
                ward: r.ward,
                institution_code: r.institution_code,
                location: GeoPoint {
                    lat: r.lat,
                    lon: r.lon,
                },
                level: r.level,
                capabilities,
                approximate,
                source: r.source,
            });
        }
        if hospitals.is_empty() {
            return Err(RegistryError::Row {
                row: 1,
                problem: "no hospitals".into(),
            });
        }
        Ok(Self { hospitals })
    }

    pub fn hospitals(&self) -> &[Hospital] {
        &self.hospitals
    }

    pub fn get(&self, id: &str) -> Option<&Hospital> {
        self.hospitals.iter().find(|h| h.id == id)
    }

    pub fn by_institution_code(&self, code: &str) -> Option<&Hospital> {
        self.hospitals.iter().find(|h| h.institution_code == code)
    }
}

/// The ward offices of Kawasaki, approximately: where a crew's position is taken to be when
/// only the incident's address is known (the ward named in it). Replace with the ambulance's
/// GPS position when the tablet reports one.
const WARD_POINTS: &[(&str, GeoPoint)] = &[
    (
        "川崎区",
        GeoPoint {
            lat: 35.5308,
            lon: 139.7029,
        },
    ),
    (
        "幸区",
        GeoPoint {
            lat: 35.5440,
            lon: 139.6860,
        },
    ),
    (
        "中原区",
        GeoPoint {
            lat: 35.5757,
            lon: 139.6594,
        },
    ),
    (
        "高津区",
        GeoPoint {
            lat: 35.5995,
            lon: 139.6120,
        },
    ),
    (
        "宮前区",
        GeoPoint {
            lat: 35.5870,
            lon: 139.5810,
        },
    ),
    (
        "多摩区",
        GeoPoint {
            lat: 35.6170,
            lon: 139.5620,
        },
    ),
    (
        "麻生区",
        GeoPoint {
            lat: 35.6040,
            lon: 139.5070,
        },
    ),
];

/// The point an address stands for: its ward's office, if the address names a ward of
/// Kawasaki. Approximate by up to a few km.
pub fn ward_point(address: &str) -> Option<(&'static str, GeoPoint)> {
    WARD_POINTS
        .iter()
        .find(|(ward, _)| address.contains(ward))
        .map(|(ward, p)| (*ward, *p))
}

/// Where a fire station's teams are assumed to start: the office of the station's ward
/// (`中原消防署` → 中原区). Approximate: a team at a branch office (出張所) is counted at its
/// station's ward office.
pub fn station_point(station: &str) -> Option<GeoPoint> {
    let ward = format!("{}区", station.strip_suffix("消防署")?);
    ward_point(&ward).map(|(_, p)| p)
}

/// A registry hospital's name, or its id if the registry does not hold it.
pub fn hospital_name(id: &str) -> String {
    Registry::shared()
        .ok()
        .and_then(|r| r.get(id))
        .map_or_else(|| id.to_owned(), |h| h.name.clone())
}

/// Kawasaki City Hall: where an incident whose address names no ward is assumed to be.
pub const CITY_HALL: GeoPoint = GeoPoint {
    lat: 35.5308,
    lon: 139.7029,
};

/// The point an incident's address stands for: its ward's office, else the city hall.
pub fn incident_origin(address: &str) -> GeoPoint {
    ward_point(address).map_or(CITY_HALL, |(_, p)| p)
}

/// 応需情報: whether a hospital takes patients needing a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Acceptance {
    Accepting,
    Limited,
    NotAccepting,
}

impl Acceptance {
    pub const ALL: [Acceptance; 3] = [
        Acceptance::Accepting,
        Acceptance::Limited,
        Acceptance::NotAccepting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Acceptance::Accepting => "accepting",
            Acceptance::Limited => "limited",
            Acceptance::NotAccepting => "not_accepting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Acceptance::Accepting => "応需可",
            Acceptance::Limited => "制限あり",
            Acceptance::NotAccepting => "受入不可",
        }
    }
}

/// A hospital's acceptance status as its staff last set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HospitalStatus {
    pub hospital_id: String,
    pub capabilities: Vec<(Capability, Acceptance)>,
    pub beds: Option<u32>,
    pub note: String,
    pub updated_at: DateTime<Utc>,
}

impl HospitalStatus {
    /// Every capability of `h` accepting, set at `at`: the demo's and the tests' hospitals.
    pub fn accepting_everything(h: &Hospital, at: DateTime<Utc>) -> Self {
        HospitalStatus {
            hospital_id: h.id.clone(),
            capabilities: h
                .capabilities
                .iter()
                .map(|c| (*c, Acceptance::Accepting))
                .collect(),
            beds: None,
            note: String::new(),
            updated_at: at,
        }
    }

    /// Minutes since the staff last set it.
    pub fn age_minutes(&self, now: DateTime<Utc>) -> i64 {
        (now - self.updated_at).num_minutes()
    }

    /// Older than the criteria's `stale_after_minutes`: shown as stale, and ranked below a
    /// fresh status.
    pub fn is_stale(&self, now: DateTime<Utc>, criteria: &Criteria) -> bool {
        now - self.updated_at > chrono::Duration::minutes(criteria.costs.stale_after_minutes)
    }

    pub fn acceptance(&self, c: Capability) -> Option<Acceptance> {
        self.capabilities
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, a)| *a)
    }
}

/// Ranking costs in minutes of ETA (negative = preferred).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    pub limited: f64,
    pub unknown: f64,
    pub stale: f64,
    pub kakaritsuke: f64,
    pub tertiary_preferred: f64,
    pub preferred: f64,
    pub stale_after_minutes: i64,
}

/// ETA over straight-line distance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtaModel {
    pub circuity: f64,
    pub speed_kmh: f64,
    pub fixed_minutes: f64,
}

impl EtaModel {
    pub fn minutes(&self, km: f64) -> f64 {
        self.fixed_minutes + km * self.circuity / self.speed_kmh * 60.0
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    pub category: ComplaintCategory,
    /// The hospital needs at least one of these (none: any hospital).
    pub requires_any: Vec<Capability>,
    #[serde(default)]
    pub prefer_tertiary: bool,
    /// Minutes decide (cardiac arrest, stroke, chest pain): the かかりつけ earns no bonus.
    #[serde(default)]
    pub time_critical: bool,
}

/// A かかりつけ needs at least this many visits within the window to earn its bonus.
pub const KAKARITSUKE_MIN_VISITS: u32 = 2;

/// A need the summary's alerts add.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modifier {
    pub alerts_any: Vec<String>,
    /// Categories it applies to; empty means all.
    pub categories: Vec<ComplaintCategory>,
    #[serde(default)]
    pub requires: Vec<Capability>,
    #[serde(default)]
    pub prefers: Vec<Capability>,
    /// Why the modifier exists, for the people who review the table; a rank's reason line
    /// names the capability instead.
    pub reason_ja: String,
}

/// 実施基準: the transport criteria table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    pub version: String,
    pub source: String,
    pub costs: Costs,
    pub eta: EtaModel,
    #[serde(rename = "category")]
    pub categories: Vec<CategoryRule>,
    #[serde(rename = "modifier", default)]
    pub modifiers: Vec<Modifier>,
}

impl Criteria {
    pub fn builtin() -> Result<Self, RegistryError> {
        Self::from_toml(CRITERIA_TOML)
    }

    /// The compiled-in table, parsed once per process.
    pub fn shared() -> Result<&'static Criteria, RegistryError> {
        static SHARED: std::sync::OnceLock<Result<Criteria, RegistryError>> =
            std::sync::OnceLock::new();
        SHARED
            .get_or_init(Criteria::builtin)
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn from_toml(text: &str) -> Result<Self, RegistryError> {
        let c: Criteria =
            toml::from_str(text).map_err(|e| RegistryError::Criteria(e.to_string()))?;
        for cat in ComplaintCategory::ALL {
            let n = c.categories.iter().filter(|r| r.category == cat).count();
            if n != 1 {
                return Err(RegistryError::Criteria(format!(
                    "category {cat:?} has {n} rules; exactly one needed"
                )));
            }
        }
        if !(c.eta.speed_kmh > 0.0 && c.eta.circuity >= 1.0 && c.eta.fixed_minutes >= 0.0) {
            return Err(RegistryError::Criteria("ETA model out of range".into()));
        }
        Ok(c)
    }

    /// What a patient in `category` with these alert classes needs.
    pub fn need(&self, category: ComplaintCategory, alert_classes: &[String]) -> Need {
        let rule = self.categories.iter().find(|r| r.category == category);
        let mut need = Need {
            any_of: rule.map(|r| r.requires_any.clone()).unwrap_or_default(),
            all_of: Vec::new(),
            prefers: Vec::new(),
            prefer_tertiary: rule.is_some_and(|r| r.prefer_tertiary),
            time_critical: rule.is_some_and(|r| r.time_critical),
        };
        for m in &self.modifiers {
            let alert = m.alerts_any.iter().any(|a| alert_classes.contains(a));
            let applies = m.categories.is_empty() || m.categories.contains(&category);
            if alert && applies {
                need.all_of.extend(m.requires.iter().copied());
                need.prefers.extend(m.prefers.iter().copied());
            }
        }
        need.all_of.sort();
        need.all_of.dedup();
        need
    }
}

/// The capabilities a patient needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub any_of: Vec<Capability>,
    pub all_of: Vec<Capability>,
    pub prefers: Vec<Capability>,
    pub prefer_tertiary: bool,
    pub time_critical: bool,
}

pub use crate::records::Kakaritsuke;

/// Everything a ranking depends on besides the registry and the criteria.
#[derive(Debug, Clone)]
pub struct RankRequest<'a> {
    pub from: GeoPoint,
    pub category: ComplaintCategory,
    pub alert_classes: &'a [String],
    pub kakaritsuke: &'a [Kakaritsuke],
    /// Hospitals that declined earlier in this incident.
    pub declined: &'a [String],
    pub statuses: &'a HashMap<String, HospitalStatus>,
    pub now: DateTime<Utc>,
}

/// One hospital's place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub hospital_id: String,
    pub name: String,
    pub distance_km: f64,
    pub eta_minutes: u32,
    /// Meets the need, is not refusing it, and did not decline in this incident.
    pub eligible: bool,
    /// ETA plus costs; lower ranks first among the eligible.
    pub score: f64,
    /// Why it sits where it does, in one line.
    pub reason_ja: String,
}

/// Ranks every hospital of the registry for one patient: the eligible ones by score, then the
/// ineligible ones by ETA, the hospitals that declined in this incident last.
fn whole_minutes(m: f64) -> u32 {
    m.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

impl Criteria {
    /// The same criteria with a bureau's own age past which a status is stale.
    pub fn with_stale_after(&self, minutes: i64) -> Criteria {
        let mut c = self.clone();
        c.costs.stale_after_minutes = minutes;
        c
    }

    /// The model's driving time between two points, in whole minutes.
    pub fn eta_minutes(&self, from: GeoPoint, to: GeoPoint) -> u32 {
        whole_minutes(self.eta.minutes(from.km_to(to)))
    }
}

pub fn rank(registry: &Registry, criteria: &Criteria, req: &RankRequest<'_>) -> Vec<Ranked> {
    let need = criteria.need(req.category, req.alert_classes);
    let costs = &criteria.costs;
    let declined: HashSet<&str> = req.declined.iter().map(String::as_str).collect();
    // The かかりつけ: the most visited institution, if visited often enough.
    let regular = req
        .kakaritsuke
        .first()
        .filter(|k| k.visits >= KAKARITSUKE_MIN_VISITS);
    let mut out: Vec<(u8, Ranked)> = registry
        .hospitals()
        .iter()
        .map(|h| {
            let km = req.from.km_to(h.location);
            let eta = criteria.eta.minutes(km);
            let eta_minutes = whole_minutes(eta);
            let mut parts = vec![format!("{eta_minutes}分")];
            let ranked = |eligible: bool, score: f64, parts: Vec<String>| Ranked {
                hospital_id: h.id.clone(),
                name: h.name.clone(),
                distance_km: (km * 10.0).round() / 10.0,
                eta_minutes,
                eligible,
                score,
                reason_ja: parts.join("・"),
            };
            if declined.contains(h.id.as_str()) {
                parts.push("本事案で辞退済み".into());
                return (2, ranked(false, f64::MAX, parts));
            }
            let has = |c: &Capability| h.capabilities.contains(c);
            let any_ok = need.any_of.is_empty() || need.any_of.iter().any(has);
            let missing: Vec<&Capability> = need.all_of.iter().filter(|c| !has(c)).collect();
            if !any_ok || !missing.is_empty() {
                let lacking: Vec<&str> = if any_ok {
                    missing.iter().map(|c| c.label_ja()).collect()
                } else {
                    need.any_of.iter().map(|c| c.label_ja()).collect()
                };
                parts.push(format!("対応なし: {}", lacking.join("/")));
                return (1, ranked(false, f64::MAX, parts));
            }
            // The capabilities the patient would use here: the best-accepting one of
            // `any_of` that the hospital has, and every one of `all_of`.
            let status = req.statuses.get(&h.id);
            let acceptance_of = |c: Capability| status.and_then(|s| s.acceptance(c));
            // With no stated need (その他), any capability of the hospital will do.
            let options = if need.any_of.is_empty() {
                &h.capabilities
            } else {
                &need.any_of
            };
            let chosen_any = options
                .iter()
                .copied()
                .filter(|c| h.capabilities.contains(c))
                .min_by_key(|c| acceptance_of(*c).unwrap_or(Acceptance::Limited));
            let used: Vec<Capability> = chosen_any
                .into_iter()
                .chain(need.all_of.iter().copied())
                .collect();
            let acceptances: Vec<Option<Acceptance>> =
                used.iter().map(|c| acceptance_of(*c)).collect();
            if let Some(refused) = used
                .iter()
                .zip(&acceptances)
                .find(|(_, a)| **a == Some(Acceptance::NotAccepting))
            {
                parts.push(format!("受入不可: {}", refused.0.label_ja()));
                return (1, ranked(false, f64::MAX, parts));
            }
            let mut score = eta;
            match (status, acceptances.iter().flatten().max()) {
                (None, _) => {
                    score += costs.unknown;
                    parts.push("応需情報なし".into());
                }
                (Some(_), Some(Acceptance::Limited)) => {
                    score += costs.limited;
                    parts.push(Acceptance::Limited.label_ja().into());
                }
                (Some(_), _) if acceptances.iter().any(Option::is_none) => {
                    score += costs.unknown;
                    parts.push("応需情報なし".into());
                }
                (Some(_), _) => parts.push(Acceptance::Accepting.label_ja().into()),
            }
            if let Some(s) = status
                && s.is_stale(req.now, criteria)
            {
                score += costs.stale;
                parts.push(format!(
                    "情報{}分前",
                    (req.now - s.updated_at).num_minutes()
                ));
            }
            if let Some(k) = regular.filter(|k| k.institution_code == h.institution_code) {
                if !need.time_critical {
                    score += costs.kakaritsuke;
                }
                parts.push(format!("かかりつけ（{}受診）", k.last_visit));
            }
            if need.prefer_tertiary && h.level == Level::Tertiary {
                score += costs.tertiary_preferred;
                parts.push("救命救急センター".into());
            }
            if let Some(p) = need.prefers.iter().find(|c| h.capabilities.contains(c)) {
                score += costs.preferred;
                parts.push(p.label_ja().into());
            }
            if !need.all_of.is_empty() {
                parts.push(format!(
                    "{}可",
                    need.all_of
                        .iter()
                        .map(|c| c.label_ja())
                        .collect::<Vec<_>>()
                        .join("/")
                ));
            }
            (0, ranked(true, score, parts))
        })
        .collect();
    out.sort_by(|(ga, a), (gb, b)| {
        ga.cmp(gb)
            .then(a.score.total_cmp(&b.score))
            .then(a.eta_minutes.cmp(&b.eta_minutes))
            .then(a.hospital_id.cmp(&b.hospital_id))
    });
    out.into_iter().map(|(_, r)| r).collect()
}

//! Deterministic synthetic population for the provider.
//!
//! Person `i` of seed `s` is a pure function of `(s, i, as_of)`: each person draws from their own
//! ChaCha stream, so persons can be generated in any order or in parallel and always come out the
//! same. Chronic conditions drive coherent drugs and visits over five years; acute episodes,
//! surgeries, dialysis and health checks fill in the rest.

pub mod institutions;
pub mod names;
pub mod year;

use chrono::{Datelike, Days, Months, NaiveDate};
use institutions::{CLINIC_KINDS, Institutions};
use myna_domain::drugs::{Catalogue, CatalogueDrug};
use myna_domain::hospitals::Registry;
use myna_domain::person::{Address, Coverage, Person, PersonId, Sex};
use myna_domain::records::{
    CareSetting, Dialysis, DialysisModality, Dispensing, DrugRef, HealthCheck, Institution,
    MedicalRecords, Procedure, ProcedureKind, Source, Visit,
};
use myna_drug_master::{DosageForm, Master, Product};
use names::{AGE_BANDS, FEMALE_GIVEN, MALE_GIVEN, SURNAMES, WARDS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How far back records go: the full view's five years, plus a little so windows are filled.
const HISTORY_MONTHS: u32 = 62;
/// Claims for a month reach the provider this many days after the month ends.
pub const CLAIMS_LAG_DAYS: u64 = 25;
/// The e-prescription service keeps dispensings for this many days.
const E_PRESCRIPTION_KEEP_DAYS: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("drug catalogue has no product for generic name {0:?}")]
    MissingDrug(&'static str),
    #[error(transparent)]
    Catalogue(#[from] myna_domain::drugs::CatalogueError),
    #[error(transparent)]
    Master(#[from] myna_drug_master::MasterError),
    #[error(transparent)]
    Registry(#[from] myna_domain::hospitals::RegistryError),
}

/// Chronic conditions the generator knows. Each implies a regimen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Hypertension,
    Dyslipidemia,
    Diabetes,
    AtrialFibrillation,
    PostStroke,
    CoronaryDisease,
    HeartFailure,
    DialysisCkd,
    Epilepsy,
    Copd,
    Asthma,
    Dementia,
    CancerChemotherapy,
    SteroidDependent,
    Transplant,
    Depression,
    Schizophrenia,
    Bipolar,
    Insomnia,
    ChronicPain,
    Gerd,
    Gout,
    ProstaticHyperplasia,
    Hypothyroidism,
    Osteoporosis,
    /// 不育症 treated with self-injected heparin.
    RecurrentPregnancyLoss,
    // The first-aid flags below are drawn from their own random stream (`first_aid_flags`),
    // so adding them left every other part of each person unchanged.
    /// A pacemaker, ICD or CRT, followed up at a hospital.
    CardiacDevice,
    /// 在宅酸素療法 (home oxygen).
    HomeOxygen,
    /// 在宅人工呼吸 (home ventilation), e.g. for a neuromuscular disease.
    HomeVentilation,
    /// Food or venom allergy with an adrenaline auto-injector.
    Anaphylaxis,
    Parkinson,
    /// 熱性けいれん (febrile seizures) with a rescue suppository.
    FebrileSeizures,
}

/// Every generic name the generator may prescribe. Tests check each exists in the catalogue.
pub const GENERICS: &[&str] = &[
    "amlodipine",
    "candesartan",
    "olmesartan",
    "telmisartan",
    "azilsartan",
    "enalapril",
    "atorvastatin",
    "rosuvastatin",
    "pitavastatin",
    "metformin",
    "sitagliptin",
    "linagliptin",
    "vildagliptin",
    "empagliflozin",
    "dapagliflozin",
    "glimepiride",
    "insulin glargine",
    "insulin aspart",
    "apixaban",
    "rivaroxaban",
    "edoxaban",
    "warfarin",
    "bisoprolol",
    "digoxin",
    "aspirin",
    "clopidogrel",
    "prasugrel",
    "cilostazol",
    "carvedilol",
    "furosemide",
    "spironolactone",
    "levetiracetam",
    "valpro",
    "carbamazepine",
    "lamotrigine",
    "tiotropium",
    "budesonide",
    "theophylline",
    "donepezil",
    "memantine",
    "capecitabine",
    "anastrozole",
    "tamoxifen",
    "prednisolone",
    "tacrolimus",
    "mycophenolate",
    "sertraline",
    "escitalopram",
    "quetiapine",
    "olanzapine",
    "aripiprazole",
    "lithium",
    "zolpidem",
    "brotizolam",
    "lemborexant",
    "oxycodone",
    "fentanyl",
    "tramadol",
    "lansoprazole",
    "vonoprazan",
    "febuxostat",
    "allopurinol",
    "tamsulosin",
    "levothyroxine",
    "alendronate",
    "loxoprofen",
    "acetaminophen",
    "magnesium oxide",
    "amiodarone",
    "heparin",
    "levodopa",
    "rotigotine",
    "phenobarbital",
];

/// Products the generator names by YJ code. Tests check each is in the catalogue.
pub const PRODUCTS: &[&str] = &[EPIPEN_015, EPIPEN_03, DIAP_4, DIAP_6];

/// One generated person with everything the provider stores about them.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticPerson {
    pub person: Person,
    /// Hex serial of the person's JPKI user-authentication certificate.
    pub cert_serial: String,
    pub conditions: Vec<Condition>,
    pub records: MedicalRecords,
}

pub struct Generator {
    seed: u64,
    as_of: NaiveDate,
    history_start: NaiveDate,
    catalogue: Catalogue,
    institutions: Institutions,
    /// Every current oral antibiotic and expectorant product of the national master, for acute
    /// infections: claims name drugs far beyond the hand-checked catalogue.
    acute_formulary: Vec<&'static Product>,
}

/// 薬効分類 of the acute-infection formulary: penicillins, cephems, macrolides, quinolones,
/// expectorants.
const ACUTE_FORMULARY_CLASSES: &[&str] = &["6131", "6132", "6149", "6241", "2239"];

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The auth-certificate serial of person `index`: an odd-multiplier bijection on 48 bits, masked
/// by the seed, so serials are unique within a population and look random.
pub fn cert_serial_for(seed: u64, index: u64) -> String {
    const MASK48: u64 = (1 << 48) - 1;
    let mixed = (index.wrapping_mul(0x5DEE_CE66_D1CB) ^ splitmix64(seed)) & MASK48;
    // Leading 0x01 keeps the DER INTEGER positive and six-plus bytes long, like JPKI serials.
    format!("01{mixed:012X}")
}

/// Last day of the newest claims month that has reached the provider on `today`.
pub fn claims_through(today: NaiveDate) -> NaiveDate {
    let mut month_end = first_of_month(today) - Days::new(1);
    while month_end + Days::new(CLAIMS_LAG_DAYS) > today {
        month_end = first_of_month(month_end) - Days::new(1);
    }
    month_end
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// When a claim for care on `service` reaches the provider.
pub fn claims_available_on(service: NaiveDate) -> NaiveDate {
    let next_month = first_of_month(service)
        .checked_add_months(Months::new(1))
        .unwrap_or(service);
    next_month - Days::new(1) + Days::new(CLAIMS_LAG_DAYS)
}

struct Regimen {
    /// Drugs as (generic key, daily quantity multiplier).
    drugs: Vec<&'static str>,
    department: &'static str,
    /// Clinic speciality index into CLINIC_KINDS, or None for a hospital outpatient department.
    clinic_kind: Option<usize>,
    interval_days: u32,
    /// Days supplied per dispensing when not the visit interval (an as-needed drug, a pen).
    supply_days: Option<u32>,
    /// 診療行為 claimed at every visit (code, name): a device follow-up, home oxygen.
    claims: &'static [Claim],
    /// The 手術 that started the care, claimed on onset inside the history.
    implant: Option<Claim>,
}

/// A claimed 診療行為: (code, name).
type Claim = (&'static str, &'static str);

/// Implant and follow-up fee of each cardiac device (codes from the 診療行為 master extract).
const CARDIAC_DEVICES: &[(&str, &str, &[Claim])] = &[
    (
        "150140210",
        "ペースメーカー移植術（経静脈電極）",
        &[(
            "113030210",
            "心臓ペースメーカー指導管理料（ペースメーカー）",
        )],
    ),
    (
        "150387410",
        "植込型除細動器移植術（経静脈リード）",
        &[(
            "113030310",
            "心臓ペースメーカー指導管理料（植込型除細動器等）",
        )],
    ),
    (
        "150415910",
        "両室ペーシング機能付き植込型除細動器移植術（経静脈電極）",
        &[(
            "113030310",
            "心臓ペースメーカー指導管理料（植込型除細動器等）",
        )],
    ),
];
const HOME_OXYGEN: &[Claim] = &[
    ("114003710", "在宅酸素療法指導管理料（その他）"),
    ("114006210", "酸素濃縮装置加算"),
];
const HOME_VENTILATION: &[Claim] = &[
    ("114005410", "在宅人工呼吸指導管理料"),
    ("114006810", "人工呼吸器加算（陽圧式人工呼吸器）"),
];

impl Generator {
    pub fn new(seed: u64, as_of: NaiveDate) -> Result<Self, SynthError> {
        let catalogue = Catalogue::builtin()?;
        for g in GENERICS {
            if catalogue.by_generic(g).is_empty() {
                return Err(SynthError::MissingDrug(g));
            }
        }
        for yj in PRODUCTS {
            if catalogue.by_yj(yj).is_none() {
                return Err(SynthError::MissingDrug(yj));
            }
        }
        let history_start = as_of
            .checked_sub_months(Months::new(HISTORY_MONTHS))
            .unwrap_or(as_of);
        let mut acute_formulary: Vec<&'static Product> = Master::shared()?
            .products()
            .filter(|p| {
                p.form == DosageForm::Oral
                    && p.current_on(as_of)
                    && ACUTE_FORMULARY_CLASSES
                        .iter()
                        .any(|c| p.yj.as_str().starts_with(c))
            })
            .collect();
        acute_formulary.sort_by(|a, b| a.receipt.as_str().cmp(b.receipt.as_str()));
        Ok(Self {
            seed,
            as_of,
            history_start,
            catalogue,
            institutions: Institutions::kawasaki(&Registry::kawasaki()?),
            acute_formulary,
        })
    }

    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn institutions(&self) -> &Institutions {
        &self.institutions
    }
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn rng_for(&self, index: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ splitmix64(index)))
    }

    /// Person number `index` (0-based) of this population.
    pub fn person(&self, index: u64) -> SyntheticPerson {
        let mut rng = self.rng_for(index);
        let (birth_date, sex) = self.birth_and_sex(&mut rng);
        let ward_idx = pick_weighted(&mut rng, WARDS.iter().map(|w| w.population_k));
        let ward = &WARDS[ward_idx];
        let (town, postal) = ward.towns[rng.random_range(0..ward.towns.len())];
        let (family, family_kana) = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let given_list = if sex == Sex::Female {
            FEMALE_GIVEN
        } else {
            MALE_GIVEN
        };
        let (given, given_kana) = given_list[rng.random_range(0..given_list.len())];
        let id = PersonId(i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1));
        let age = age_on(birth_date, self.as_of);
        let person = Person {
            id,
            name: format!("{family}\u{3000}{given}"),
            name_kana: format!("{family_kana}\u{3000}{given_kana}"),
            birth_date,
            sex,
            address: Address {
                postal_code: postal.to_owned(),
                prefecture: "神奈川県".to_owned(),
                municipality: format!("川崎市{}", ward.name),
                street: format!(
                    "{town}{}-{}-{}",
                    rng.random_range(1..6),
                    rng.random_range(1..30),
                    rng.random_range(1..20)
                ),
            },
            coverage: coverage(&mut rng, age, index),
        };
        let conditions = conditions_for(&mut rng, age, sex);
        let mut records = MedicalRecords::default();
        for c in &conditions {
            self.chronic_care(&mut rng, *c, ward_idx, birth_date, &mut records);
        }
        self.acute_episodes(&mut rng, ward_idx, birth_date, &mut records);
        self.surgeries(
            &mut rng,
            &conditions,
            ward_idx,
            birth_date,
            sex,
            &mut records,
        );
        self.health_checks(&mut rng, &conditions, age, &mut records);
        let mut flag_rng = self.rng_for(index ^ FIRST_AID_STREAM);
        let flags = first_aid_flags(&mut flag_rng, age, &conditions);
        for c in &flags {
            self.chronic_care(&mut flag_rng, *c, ward_idx, birth_date, &mut records);
        }
        self.infections(&mut flag_rng, ward_idx, birth_date, &mut records);
        let mut conditions = conditions;
        conditions.extend(flags);
        records.visits.sort_by(|a, b| {
            (a.service_date, &a.institution.code).cmp(&(b.service_date, &b.institution.code))
        });
        records.visits.dedup_by(|a, b| {
            a.institution.code == b.institution.code
                && a.setting == b.setting
                && first_of_month(a.service_date) == first_of_month(b.service_date)
        });
        records.dispensings.sort_by_key(|d| d.service_date);
        records.procedures.sort_by_key(|p| p.service_date);
        records.dialysis.sort_by_key(|d| d.service_date);
        records.health_checks.sort_by_key(|h| h.service_date);
        SyntheticPerson {
            person,
            cert_serial: cert_serial_for(self.seed, index),
            conditions,
            records,
        }
    }

    /// Where a person's care can start (the history's start, or birth if later) and the days
    /// from there to `as_of`.
    fn care_span(&self, born: NaiveDate) -> (NaiveDate, u64) {
        let from = self.history_start.max(born);
        (from, (self.as_of - from).num_days().max(1) as u64)
    }

    fn birth_and_sex(&self, rng: &mut ChaCha8Rng) -> (NaiveDate, Sex) {
        let band = pick_weighted(rng, AGE_BANDS.iter().map(|(n, _)| *n));
        let female_permille = AGE_BANDS[band].1;
        let max_age = if band + 1 == AGE_BANDS.len() { 15 } else { 5 };
        let age_days = (band as u64 * 5 * 365) + rng.random_range(0..max_age * 365);
        let birth = self
            .as_of
            .checked_sub_days(Days::new(age_days + 1))
            .unwrap_or(self.as_of);
        let sex = if rng.random_range(0..1000) < female_permille {
            Sex::Female
        } else {
            Sex::Male
        };
        (birth, sex)
    }

    /// A product for `key`: a YJ code names one product; a generic name picks among them.
    fn drug(&self, rng: &mut ChaCha8Rng, key: &str) -> Option<&CatalogueDrug> {
        if let Some(d) = self.catalogue.by_yj(key) {
            return Some(d);
        }
        let options = self.catalogue.by_generic(key);
        if options.is_empty() {
            return None;
        }
        Some(options[rng.random_range(0..options.len())])
    }

    fn regimen(&self, rng: &mut ChaCha8Rng, c: Condition, age: u32) -> Regimen {
        use Condition::*;
        let (drugs, department, clinic_kind, interval) = match c {
            Hypertension => (
                vec![one(
                    rng,
                    &[
                        "amlodipine",
                        "candesartan",
                        "olmesartan",
                        "telmisartan",
                        "azilsartan",
                        "enalapril",
                    ],
                )],
                "内科",
                Some(0),
                28,
            ),
            Dyslipidemia => (
                vec![one(rng, &["atorvastatin", "rosuvastatin", "pitavastatin"])],
                "内科",
                Some(0),
                56,
            ),
            Diabetes => {
                let mut d = vec![one(
                    rng,
                    &["metformin", "sitagliptin", "linagliptin", "vildagliptin"],
                )];
                match rng.random_range(0..100) {
                    0..=24 => d.push(one(rng, &["empagliflozin", "dapagliflozin"])),
                    25..=39 => d.push("glimepiride"),
                    40..=51 => d.push(one(rng, &["insulin glargine", "insulin aspart"])),
                    _ => {}
                }
                (d, "内科", Some(0), 28)
            }
            AtrialFibrillation => {
                let mut d = vec![if rng.random_bool(0.75) {
                    one(rng, &["apixaban", "rivaroxaban", "edoxaban"])
                } else {
                    "warfarin"
                }];
                if rng.random_bool(0.5) {
                    d.push("bisoprolol");
                }
                if rng.random_bool(0.06) {
                    d.push("digoxin");
                }
                if rng.random_bool(0.05) {
                    d.push("amiodarone");
                }
                (d, "循環器内科", None, 28)
            }
            PostStroke => (
                vec![one(rng, &["clopidogrel", "aspirin", "cilostazol"])],
                "脳神経内科",
                None,
                56,
            ),
            CoronaryDisease => {
                let mut d = vec!["aspirin"];
                if rng.random_bool(0.5) {
                    d.push(one(rng, &["clopidogrel", "prasugrel"]));
                }
                d.push("lansoprazole");
                (d, "循環器内科", None, 56)
            }
            HeartFailure => (
                vec!["furosemide", "spironolactone", "carvedilol"],
                "循環器内科",
                None,
                28,
            ),
            DialysisCkd => (vec!["febuxostat"], "腎臓内科", Some(4), 28),
            Epilepsy => (
                vec![one(
                    rng,
                    &["levetiracetam", "valpro", "carbamazepine", "lamotrigine"],
                )],
                "脳神経内科",
                None,
                56,
            ),
            Copd => (vec!["tiotropium"], "呼吸器内科", Some(0), 28),
            Asthma => {
                let mut d = vec!["budesonide"];
                if rng.random_bool(0.1) {
                    d.push("theophylline");
                }
                (d, "呼吸器内科", Some(0), 56)
            }
            Dementia => (
                vec![one(rng, &["donepezil", "memantine"])],
                "脳神経内科",
                Some(0),
                28,
            ),
            CancerChemotherapy => (
                vec![one(rng, &["capecitabine", "anastrozole", "tamoxifen"])],
                "腫瘍内科",
                None,
                21,
            ),
            SteroidDependent => (vec!["prednisolone", "alendronate"], "膠原病内科", None, 28),
            Transplant => (
                vec!["tacrolimus", "mycophenolate", "prednisolone"],
                "腎臓内科",
                None,
                28,
            ),
            Depression => (
                vec![one(rng, &["sertraline", "escitalopram"])],
                "精神科",
                Some(3),
                28,
            ),
            Schizophrenia => (
                vec![one(rng, &["quetiapine", "olanzapine", "aripiprazole"])],
                "精神科",
                Some(3),
                28,
            ),
            Bipolar => (vec!["lithium"], "精神科", Some(3), 28),
            Insomnia => (
                vec![one(rng, &["zolpidem", "brotizolam", "lemborexant"])],
                "内科",
                Some(0),
                28,
            ),
            ChronicPain => (
                vec![
                    one(rng, &["oxycodone", "fentanyl", "tramadol"]),
                    "magnesium oxide",
                ],
                "緩和ケア内科",
                None,
                14,
            ),
            Gerd => (
                vec![one(rng, &["lansoprazole", "vonoprazan"])],
                "内科",
                Some(0),
                56,
            ),
            Gout => (
                vec![one(rng, &["febuxostat", "allopurinol"])],
                "内科",
                Some(0),
                56,
            ),
            ProstaticHyperplasia => (vec!["tamsulosin"], "泌尿器科", None, 56),
            Hypothyroidism => (vec!["levothyroxine"], "内科", Some(0), 56),
            Osteoporosis => (vec!["alendronate"], "整形外科", Some(1), 28),
            RecurrentPregnancyLoss => (vec!["heparin"], "産婦人科", None, 14),
            CardiacDevice => {
                let (code, name, fee) =
                    CARDIAC_DEVICES[pick_weighted(rng, [80, 12, 8].into_iter())];
                return Regimen {
                    drugs: vec![],
                    department: "循環器内科",
                    clinic_kind: None,
                    interval_days: 91,
                    supply_days: None,
                    claims: fee,
                    implant: Some((code, name)),
                };
            }
            HomeOxygen | HomeVentilation => {
                let ventilation = c == HomeVentilation;
                return Regimen {
                    drugs: vec![],
                    department: if ventilation {
                        "脳神経内科"
                    } else {
                        "呼吸器内科"
                    },
                    clinic_kind: None,
                    interval_days: 28,
                    supply_days: None,
                    claims: if ventilation {
                        HOME_VENTILATION
                    } else {
                        HOME_OXYGEN
                    },
                    implant: None,
                };
            }
            Anaphylaxis => {
                return Regimen {
                    // エピペン 0.15 mg below about 30 kg (up to about 9 years), 0.3 mg above.
                    drugs: vec![if age <= 9 { EPIPEN_015 } else { EPIPEN_03 }],
                    department: "小児科",
                    clinic_kind: None,
                    // Renewed before the pen expires; one pen, not a supply of days.
                    interval_days: 300,
                    supply_days: Some(1),
                    claims: &[],
                    implant: None,
                };
            }
            Parkinson => {
                let mut d = vec!["levodopa"];
                if rng.random_bool(0.3) {
                    d.push("rotigotine");
                }
                (d, "脳神経内科", None, 28)
            }
            FebrileSeizures => {
                return Regimen {
                    // ダイアップ 0.4–0.5 mg/kg: 4 mg up to about 2 years, 6 mg after.
                    drugs: vec![match (rng.random_bool(0.7), age <= 2) {
                        (true, true) => DIAP_4,
                        (true, false) => DIAP_6,
                        (false, _) => "phenobarbital",
                    }],
                    department: "小児科",
                    clinic_kind: None,
                    // Renewed twice a year and kept at home for the next fever: two doses.
                    interval_days: 182,
                    supply_days: Some(2),
                    claims: &[],
                    implant: None,
                };
            }
        };
        Regimen {
            drugs,
            department,
            clinic_kind,
            interval_days: interval,
            supply_days: None,
            claims: &[],
            implant: None,
        }
    }

    fn chronic_care(
        &self,
        rng: &mut ChaCha8Rng,
        c: Condition,
        ward: usize,
        born: NaiveDate,
        out: &mut MedicalRecords,
    ) {
        let age = age_on(born, self.as_of);
        let regimen = self.regimen(rng, c, age);
        let wi = &self.institutions.wards[ward];
        let prescriber = match regimen.clinic_kind {
            Some(k) => pick(rng, &wi.clinics[k]),
            None => pick(rng, &wi.hospitals)
                .or_else(|| pick(rng, &self.institutions.wards[0].hospitals)),
        };
        let (Some(prescriber), Some(pharmacy)) =
            (prescriber.cloned(), pick(rng, &wi.pharmacies).cloned())
        else {
            return;
        };
        // Onset: most conditions predate the window; some start inside it.
        let span_days = (self.as_of - self.history_start).num_days().max(1) as u64;
        let onset = if rng.random_bool(0.7) || age < 1 {
            self.history_start
        } else {
            self.history_start + Days::new(rng.random_range(0..span_days))
        };
        // Never before the age the condition can start at: care is not dated before birth.
        let earliest = born
            .checked_add_months(Months::new(earliest_onset_months(c)))
            .unwrap_or(born);
        let onset = onset.max(earliest);
        if onset > self.as_of {
            return;
        }
        let drugs: Vec<(DrugRef, f64, String)> = regimen
            .drugs
            .iter()
            .filter_map(|g| self.drug(rng, g))
            .map(|d| {
                (
                    drug_ref(d),
                    d.typical_daily_quantity,
                    d.quantity_unit.clone(),
                )
            })
            .collect();
        let e_prescribing = rng.random_bool(0.3);
        // Care that predates the window is already in its rhythm; a new diagnosis starts with a
        // visit and a prescription on the day of onset.
        let mut date = if onset == self.history_start {
            onset + Days::new(rng.random_range(0..u64::from(regimen.interval_days)))
        } else {
            onset
        };
        while date <= self.as_of {
            out.visits.push(Visit {
                service_date: date,
                available_on: claims_available_on(date),
                institution: prescriber.clone(),
                department: regimen.department.to_owned(),
                setting: CareSetting::Outpatient,
                source: Source::Claims,
            });
            if c == Condition::DialysisCkd {
                out.dialysis.push(Dialysis {
                    service_date: date,
                    available_on: claims_available_on(date),
                    modality: DialysisModality::Hemodialysis,
                    sessions: rng.random_range(12..=14),
                    institution: prescriber.clone(),
                    source: Source::Claims,
                });
            }
            if date == onset
                && onset > self.history_start
                && let Some((code, name)) = regimen.implant
            {
                out.procedures.push(Procedure {
                    service_date: date,
                    available_on: claims_available_on(date),
                    kind: ProcedureKind::Surgery,
                    code: code.to_owned(),
                    name: name.to_owned(),
                    institution: prescriber.clone(),
                    source: Source::Claims,
                });
            }
            for (code, name) in regimen.claims {
                out.procedures.push(Procedure {
                    service_date: date,
                    available_on: claims_available_on(date),
                    kind: ProcedureKind::Procedure,
                    code: (*code).to_owned(),
                    name: (*name).to_owned(),
                    institution: prescriber.clone(),
                    source: Source::Claims,
                });
            }
            if rng.random_bool(0.25) {
                out.procedures.push(Procedure {
                    service_date: date,
                    available_on: claims_available_on(date),
                    kind: ProcedureKind::Procedure,
                    code: "D007".to_owned(),
                    name: "血液化学検査".to_owned(),
                    institution: prescriber.clone(),
                    source: Source::Claims,
                });
            }
            for (drug, qty, unit) in &drugs {
                let d = Dispensing {
                    service_date: date,
                    available_on: claims_available_on(date),
                    drug: drug.clone(),
                    daily_quantity: *qty,
                    unit: unit.clone(),
                    days: regimen.supply_days.unwrap_or(regimen.interval_days),
                    prescriber: prescriber.clone(),
                    pharmacy: Some(pharmacy.clone()),
                    source: Source::Claims,
                };
                if e_prescribing && date + Days::new(E_PRESCRIPTION_KEEP_DAYS) >= self.as_of {
                    out.dispensings.push(Dispensing {
                        available_on: date,
                        source: Source::EPrescription,
                        ..d.clone()
                    });
                }
                out.dispensings.push(d);
            }
            let jitter = rng.random_range(0..4);
            date = date + Days::new(u64::from(regimen.interval_days) + jitter);
        }
    }

    /// Zero to three acute infections over the history, each a clinic visit and a course of a
    /// product drawn from the whole national master.
    fn infections(
        &self,
        rng: &mut ChaCha8Rng,
        ward: usize,
        born: NaiveDate,
        out: &mut MedicalRecords,
    ) {
        let wi = &self.institutions.wards[ward];
        let (from, span) = self.care_span(born);
        for _ in 0..rng.random_range(0..4) {
            let date = from + Days::new(rng.random_range(0..span));
            let (Some(clinic), Some(pharmacy), Some(product)) = (
                pick(rng, &wi.clinics[0]).cloned(),
                pick(rng, &wi.pharmacies).cloned(),
                pick(rng, &self.acute_formulary),
            ) else {
                continue;
            };
            let per_day = match product.unit.as_str() {
                "錠" | "カプセル" => 3.0,
                _ => 1.5,
            };
            let course = AcuteCourse {
                date,
                clinic,
                department: CLINIC_KINDS[0].1,
                pharmacy,
                drug: product.drug_ref(),
                per_day,
                unit: product.unit.clone(),
                days: rng.random_range(3..=7),
            };
            course.record(out);
        }
    }

    fn acute_episodes(
        &self,
        rng: &mut ChaCha8Rng,
        ward: usize,
        born: NaiveDate,
        out: &mut MedicalRecords,
    ) {
        let wi = &self.institutions.wards[ward];
        let (from, span) = self.care_span(born);
        let episodes = rng.random_range(0..8);
        for _ in 0..episodes {
            let date = from + Days::new(rng.random_range(0..span));
            let kind = rng.random_range(0..2usize);
            let Some(clinic) = pick(rng, &wi.clinics[kind]).cloned() else {
                continue;
            };
            let Some(pharmacy) = pick(rng, &wi.pharmacies).cloned() else {
                continue;
            };
            let generic = if rng.random_bool(0.5) {
                "loxoprofen"
            } else {
                "acetaminophen"
            };
            if let Some(d) = self.drug(rng, generic) {
                let course = AcuteCourse {
                    date,
                    clinic,
                    department: CLINIC_KINDS[kind].1,
                    pharmacy,
                    drug: drug_ref(d),
                    per_day: d.typical_daily_quantity,
                    unit: d.quantity_unit.clone(),
                    days: rng.random_range(3..=7),
                };
                course.record(out);
            }
        }
    }

    fn surgeries(
        &self,
        rng: &mut ChaCha8Rng,
        conditions: &[Condition],
        ward: usize,
        born: NaiveDate,
        sex: Sex,
        out: &mut MedicalRecords,
    ) {
        let age = age_on(born, self.as_of);
        // (区分番号, name, department, yearly probability)
        let mut candidates: Vec<(&str, &str, &str, f64)> = vec![
            ("K718", "虫垂切除術", "外科", 0.001),
            (
                "K672-2",
                "腹腔鏡下胆嚢摘出術",
                "外科",
                if age >= 40 { 0.002 } else { 0.0 },
            ),
        ];
        if age >= 65 {
            candidates.push(("K282", "水晶体再建術", "眼科", 0.02));
        }
        if age >= 75 && sex == Sex::Female {
            candidates.push(("K081", "人工骨頭挿入術", "整形外科", 0.01));
        }
        if age >= 50 && sex == Sex::Male {
            candidates.push(("K634", "腹腔鏡下鼠径ヘルニア手術", "外科", 0.003));
        }
        if conditions.contains(&Condition::CoronaryDisease) {
            candidates.push(("K549", "経皮的冠動脈ステント留置術", "循環器内科", 0.15));
        }
        if conditions.contains(&Condition::CancerChemotherapy) {
            candidates.push(("K719", "結腸切除術", "外科", 0.2));
        }
        let years = f64::from(HISTORY_MONTHS) / 12.0;
        let (from, span) = self.care_span(born);
        for (code, name, dept, p) in candidates {
            if p <= 0.0 || !rng.random_bool((p * years).min(1.0)) {
                continue;
            }
            let date = from + Days::new(rng.random_range(0..span));
            let Some(hospital) = pick(rng, &self.institutions.wards[ward].hospitals)
                .or_else(|| pick(rng, &self.institutions.wards[0].hospitals))
                .cloned()
            else {
                continue;
            };
            out.visits.push(Visit {
                service_date: date,
                available_on: claims_available_on(date),
                institution: hospital.clone(),
                department: dept.to_owned(),
                setting: CareSetting::Inpatient,
                source: Source::Claims,
            });
            out.procedures.push(Procedure {
                service_date: date,
                available_on: claims_available_on(date),
                kind: ProcedureKind::Surgery,
                code: code.to_owned(),
                name: name.to_owned(),
                institution: hospital,
                source: Source::Claims,
            });
        }
    }

    fn health_checks(
        &self,
        rng: &mut ChaCha8Rng,
        conditions: &[Condition],
        age: u32,
        out: &mut MedicalRecords,
    ) {
        let diabetic = conditions.contains(&Condition::Diabetes);
        let hypertensive = conditions.contains(&Condition::Hypertension);
        let dialysis = conditions.contains(&Condition::DialysisCkd);
        let height = rng.random_range(150.0..180.0_f64);
        let bmi = rng.random_range(18.0..30.0_f64);
        let month = rng.random_range(5..=11);
        for years_ago in 0..5u32 {
            let check_age = age.saturating_sub(years_ago);
            if !(40..=74).contains(&check_age) || !rng.random_bool(0.6) {
                continue;
            }
            let Some(date) = NaiveDate::from_ymd_opt(
                self.as_of.year() - years_ago as i32,
                month,
                rng.random_range(1..=28),
            ) else {
                continue;
            };
            if date > self.as_of {
                continue;
            }
            let weight = bmi * (height / 100.0) * (height / 100.0);
            out.health_checks.push(HealthCheck {
                service_date: date,
                available_on: date + Days::new(90),
                height_cm: (height * 10.0).round() / 10.0,
                weight_kg: (weight * 10.0).round() / 10.0,
                systolic_mmhg: if hypertensive {
                    rng.random_range(130..165)
                } else {
                    rng.random_range(100..135)
                },
                diastolic_mmhg: rng.random_range(60..95),
                hba1c_percent: Some(
                    if diabetic {
                        rng.random_range(65..95)
                    } else {
                        rng.random_range(50..60)
                    } as f64
                        / 10.0,
                ),
                ldl_mg_dl: Some(rng.random_range(70..180)),
                egfr: Some(
                    if dialysis {
                        rng.random_range(3.0..10.0_f64)
                    } else {
                        rng.random_range(45.0..100.0_f64)
                    }
                    .round(),
                ),
                urine_protein: if dialysis {
                    "3+"
                } else if rng.random_bool(0.1) {
                    "±"
                } else {
                    "-"
                }
                .to_owned(),
                source: Source::Insurer,
            });
        }
    }
}

fn drug_ref(d: &CatalogueDrug) -> DrugRef {
    DrugRef {
        yj: d.yj_code.clone(),
        receipt_code: d.receipt_code.clone(),
        name: Catalogue::display_name(d),
        generic_name: d.generic_name_ja.clone(),
        strength: format!("{}{}", d.strength, d.strength_unit),
    }
}

fn one(rng: &mut ChaCha8Rng, options: &[&'static str]) -> &'static str {
    options
        .get(rng.random_range(0..options.len().max(1)))
        .copied()
        .unwrap_or("")
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len()))
    }
}

pub(crate) fn pick_weighted(
    rng: &mut ChaCha8Rng,
    weights: impl Iterator<Item = u32> + Clone,
) -> usize {
    let total: u32 = weights.clone().sum();
    let mut x = rng.random_range(0..total.max(1));
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    0
}

fn age_on(birth: NaiveDate, today: NaiveDate) -> u32 {
    let mut years = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// Age-banded prevalence of treated chronic conditions, roughly as in Japanese surveys.
/// One outpatient visit with a short course of one drug.
struct AcuteCourse {
    date: NaiveDate,
    clinic: Institution,
    department: &'static str,
    pharmacy: Institution,
    drug: DrugRef,
    per_day: f64,
    unit: String,
    days: u32,
}

impl AcuteCourse {
    fn record(self, out: &mut MedicalRecords) {
        out.visits.push(Visit {
            service_date: self.date,
            available_on: claims_available_on(self.date),
            institution: self.clinic.clone(),
            department: self.department.to_owned(),
            setting: CareSetting::Outpatient,
            source: Source::Claims,
        });
        out.dispensings.push(Dispensing {
            service_date: self.date,
            available_on: claims_available_on(self.date),
            drug: self.drug,
            daily_quantity: self.per_day,
            unit: self.unit,
            days: self.days,
            prescriber: self.clinic,
            pharmacy: Some(self.pharmacy),
            source: Source::Claims,
        });
    }
}

/// Age in months before which a condition's care cannot start.
fn earliest_onset_months(c: Condition) -> u32 {
    match c {
        Condition::FebrileSeizures => 12,
        Condition::Anaphylaxis => 12,
        _ => 0,
    }
}

/// Catalogue products chosen by age, by YJ code.
const EPIPEN_015: &str = "2451402G2020";
const EPIPEN_03: &str = "2451402G3026";
const DIAP_4: &str = "1124701J1022";
const DIAP_6: &str = "1124701J2029";

/// Mixed into a person's index for the stream the first-aid flags are drawn from.
const FIRST_AID_STREAM: u64 = 0x4649_5253_5441_4944;

/// Conditions that carry a first-aid flag, with Japan-like prevalence: about 0.3 % of people
/// live with a pacemaker or ICD (more of the old), home oxygen serves about 0.14 % (often
/// COPD), home ventilation about 0.02 %, auto-injectors go mostly to children with food
/// allergy, Parkinson's disease reaches about 1 % after 65, and febrile seizures touch about
/// 8 % of children under 6 (a rescue suppository for some of them).
fn first_aid_flags(rng: &mut ChaCha8Rng, age: u32, conditions: &[Condition]) -> Vec<Condition> {
    use Condition::*;
    let band = |young: f64, fifties: f64, sixties: f64, seventies: f64, old: f64| match age {
        0..=49 => young,
        50..=59 => fifties,
        60..=69 => sixties,
        70..=79 => seventies,
        _ => old,
    };
    let has = |c| conditions.contains(&c);
    let oxygen = if has(Copd) {
        0.15
    } else if has(HeartFailure) {
        0.05
    } else {
        band(0.0001, 0.0005, 0.001, 0.002, 0.003)
    };
    let table = [
        (CardiacDevice, band(0.0005, 0.002, 0.006, 0.012, 0.02)),
        (HomeOxygen, oxygen),
        (HomeVentilation, if age >= 1 { 0.0002 } else { 0.0 }),
        (
            Anaphylaxis,
            match age {
                1..=14 => 0.008,
                15..=39 => 0.002,
                _ => 0.0005,
            },
        ),
        (
            Parkinson,
            match age {
                0..=39 => 0.0,
                40..=49 => 0.0002,
                _ => band(0.0, 0.001, 0.004, 0.01, 0.015),
            },
        ),
        (
            FebrileSeizures,
            if (1..=5).contains(&age) { 0.04 } else { 0.0 },
        ),
    ];
    table
        .into_iter()
        .filter(|(_, p)| *p > 0.0 && rng.random_bool(*p))
        .map(|(c, _)| c)
        .collect()
}

fn conditions_for(rng: &mut ChaCha8Rng, age: u32, sex: Sex) -> Vec<Condition> {
    use Condition::*;
    let band = |young: f64, forties: f64, fifties: f64, sixties: f64, seventies: f64, old: f64| {
        match age {
            0..=39 => young,
            40..=49 => forties,
            50..=59 => fifties,
            60..=69 => sixties,
            70..=79 => seventies,
            _ => old,
        }
    };
    let female = sex == Sex::Female;
    let male = sex == Sex::Male;
    let table: [(Condition, f64); 26] = [
        (Hypertension, band(0.01, 0.10, 0.22, 0.35, 0.48, 0.55)),
        (Dyslipidemia, band(0.01, 0.07, 0.16, 0.25, 0.28, 0.22)),
        (Diabetes, band(0.003, 0.04, 0.08, 0.13, 0.16, 0.14)),
        (
            AtrialFibrillation,
            band(0.0, 0.002, 0.008, 0.02, 0.04, 0.07),
        ),
        (PostStroke, band(0.0, 0.003, 0.01, 0.025, 0.045, 0.07)),
        (CoronaryDisease, band(0.0, 0.003, 0.012, 0.03, 0.045, 0.05)),
        (HeartFailure, band(0.0, 0.001, 0.003, 0.008, 0.02, 0.05)),
        (DialysisCkd, band(0.0003, 0.002, 0.003, 0.005, 0.006, 0.005)),
        (Epilepsy, 0.008),
        (
            Copd,
            band(
                0.0,
                0.0,
                0.005,
                if male { 0.03 } else { 0.008 },
                if male { 0.05 } else { 0.01 },
                0.04,
            ),
        ),
        (Asthma, 0.03),
        (Dementia, band(0.0, 0.0, 0.001, 0.01, 0.05, 0.18)),
        (
            CancerChemotherapy,
            band(0.0005, 0.003, 0.006, 0.01, 0.012, 0.008),
        ),
        (
            SteroidDependent,
            band(0.002, 0.004, 0.006, 0.01, 0.012, 0.012),
        ),
        (Transplant, 0.0004),
        (Depression, band(0.02, 0.03, 0.03, 0.02, 0.015, 0.01)),
        (Schizophrenia, if age >= 15 { 0.007 } else { 0.0 }),
        (Bipolar, if age >= 15 { 0.003 } else { 0.0 }),
        (Insomnia, band(0.005, 0.04, 0.06, 0.08, 0.10, 0.12)),
        (ChronicPain, band(0.0, 0.001, 0.002, 0.003, 0.004, 0.005)),
        (Gerd, band(0.01, 0.04, 0.07, 0.09, 0.10, 0.10)),
        (
            Gout,
            if male {
                band(0.005, 0.04, 0.05, 0.05, 0.04, 0.03)
            } else {
                0.002
            },
        ),
        (
            ProstaticHyperplasia,
            if male {
                band(0.0, 0.0, 0.03, 0.08, 0.14, 0.18)
            } else {
                0.0
            },
        ),
        (
            Hypothyroidism,
            if female {
                band(0.005, 0.02, 0.025, 0.03, 0.03, 0.03)
            } else {
                0.003
            },
        ),
        (
            RecurrentPregnancyLoss,
            if female && (20..45).contains(&age) {
                0.003
            } else {
                0.0
            },
        ),
        (
            Osteoporosis,
            if female {
                band(0.0, 0.0, 0.02, 0.06, 0.12, 0.18)
            } else {
                band(0.0, 0.0, 0.0, 0.01, 0.02, 0.04)
            },
        ),
    ];
    if age < 1 {
        return Vec::new();
    }
    table
        .iter()
        .filter(|(_, p)| *p > 0.0 && rng.random_bool(p.min(1.0)))
        .map(|(c, _)| *c)
        .collect()
}

/// Synthetic coverage: insurer by age, 保険者番号 with a check digit.
fn coverage(rng: &mut ChaCha8Rng, age: u32, index: u64) -> Coverage {
    let (law, name) = if age >= 75 {
        ("39", "神奈川県後期高齢者医療広域連合")
    } else {
        match rng.random_range(0..100) {
            0..=39 => ("01", "全国健康保険協会 神奈川支部"),
            40..=69 => ("06", "健康保険組合"),
            _ => ("", "川崎市国民健康保険"),
        }
    };
    let body = if law.is_empty() {
        // 国保: 6 digits, 都道府県 14 + 3-digit 保険者別 + check digit.
        format!("14{:03}", 130 + rng.random_range(0..3))
    } else {
        format!("{law}14{:03}", rng.random_range(0..1000))
    };
    Coverage {
        insurer_number: format!("{body}{}", insurer_check_digit(&body)),
        insurer_name: name.to_owned(),
        symbol: format!("{}", 100 + rng.random_range(0..900)),
        number: format!("{}", 1000 + (index % 9_000_000)),
        branch: format!("{:02}", rng.random_range(0..3)),
    }
}

/// 保険者番号 check digit: weights 2,1,2,1… from the right, sum the digits of each product,
/// check = (10 − sum mod 10) mod 10 (the Luhn scheme used for 保険者番号).
pub fn insurer_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.saturating_sub(b'0'));
            let p = if i % 2 == 0 { d * 2 } else { d };
            p / 10 + p % 10
        })
        .sum();
    (10 - sum % 10) % 10
}

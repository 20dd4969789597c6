#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Summary windows, claims lag and record-driven alerts.

use chrono::{Days, NaiveDate};
use myna_domain::alerts::AlertTable;
use myna_domain::codes::YjCode;
use myna_domain::person::{Address, Coverage, Person, PersonId, Sex};
use myna_domain::records::*;
use myna_domain::summary::{View, Window, Windows, build_summary};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn today() -> NaiveDate {
    d("2026-11-24")
}

fn person() -> Person {
    Person {
        id: PersonId(7),
        name: "川崎　花子".into(),
        name_kana: "カワサキ　ハナコ".into(),
        birth_date: d("1948-05-03"),
        sex: Sex::Female,
        address: Address {
            postal_code: "211-0063".into(),
            prefecture: "神奈川県".into(),
            municipality: "川崎市中原区".into(),
            street: "小杉町1-2-3".into(),
        },
        coverage: Coverage {
            insurer_number: "39140011".into(),
            insurer_name: "神奈川県後期高齢者医療広域連合".into(),
            symbol: "123".into(),
            number: "4567".into(),
            branch: "00".into(),
        },
    }
}

fn clinic() -> Institution {
    Institution {
        code: "1419000001".into(),
        name: "小杉町内科クリニック".into(),
        kind: InstitutionKind::Clinic,
    }
}

fn dispensing(yj: &str, name: &str, service: NaiveDate, days: u32, source: Source) -> Dispensing {
    Dispensing {
        service_date: service,
        available_on: if source == Source::EPrescription {
            service
        } else {
            service + Days::new(40)
        },
        drug: DrugRef {
            yj: YjCode::parse(yj).unwrap(),
            receipt_code: None,
            name: name.into(),
            generic_name: name.into(),
            strength: String::new(),
        },
        daily_quantity: 1.0,
        unit: "錠".into(),
        days,
        prescriber: clinic(),
        pharmacy: None,
        source,
    }
}

fn visit(service: NaiveDate) -> Visit {
    Visit {
        service_date: service,
        available_on: service + Days::new(40),
        institution: clinic(),
        department: "内科".into(),
        setting: CareSetting::Outpatient,
        source: Source::Claims,
    }
}

fn surgery(service: NaiveDate) -> Procedure {
    Procedure {
        service_date: service,
        available_on: service + Days::new(40),
        kind: ProcedureKind::Surgery,
        code: "K282".into(),
        name: "水晶体再建術".into(),
        institution: clinic(),
        source: Source::Claims,
    }
}

fn alert_ids(records: &MedicalRecords) -> Vec<String> {
    let table = AlertTable::builtin().unwrap();
    build_summary(&person(), records, View::Summary, today(), None, &table)
        .alerts
        .into_iter()
        .map(|a| a.class)
        .collect()
}

#[test]
fn summary_and_full_windows_match_mhlw() {
    let s = Windows::for_view(View::Summary);
    assert_eq!(s.visits, Window::Months(3));
    assert_eq!(s.claims_drugs, Window::Months(3));
    assert_eq!(s.e_prescriptions, Window::Days(45));
    assert_eq!(s.surgeries, Window::Months(60));
    assert_eq!(s.procedures, Window::Months(3));
    assert_eq!(s.dialysis, Window::Months(3));
    assert_eq!(s.health_checks, Window::Rounds(1));
    let f = Windows::for_view(View::Full);
    assert_eq!(f.visits, Window::Months(60));
    assert_eq!(f.e_prescriptions, Window::Days(100));
    assert_eq!(f.health_checks, Window::Rounds(5));
    assert_eq!(s.earliest(today()), d("2021-11-24"));
}

#[test]
fn visits_outside_three_months_only_show_in_full_view() {
    let records = MedicalRecords {
        visits: vec![
            visit(d("2026-08-01")),
            visit(d("2026-08-25")),
            visit(d("2022-01-10")),
        ],
        ..Default::default()
    };
    let table = AlertTable::builtin().unwrap();
    let s = build_summary(&person(), &records, View::Summary, today(), None, &table);
    assert_eq!(
        s.sections.visits.len(),
        1,
        "only 2026-08-25 is within 3 months"
    );
    assert_eq!(s.sections.visits[0].service_date, d("2026-08-25"));
    let f = build_summary(&person(), &records, View::Full, today(), None, &table);
    assert_eq!(f.sections.visits.len(), 3);
    // Newest first.
    assert_eq!(f.sections.visits[0].service_date, d("2026-08-25"));
}

#[test]
fn claims_not_yet_available_are_hidden() {
    // Care on 2026-11-01 reaches the provider 40 days later: not on the summary today.
    let records = MedicalRecords {
        visits: vec![visit(d("2026-11-01"))],
        dispensings: vec![dispensing(
            "3339004F1029",
            "エリキュース錠5mg",
            d("2026-11-01"),
            28,
            Source::Claims,
        )],
        ..Default::default()
    };
    let table = AlertTable::builtin().unwrap();
    let s = build_summary(
        &person(),
        &records,
        View::Summary,
        today(),
        Some(d("2026-09-30")),
        &table,
    );
    assert!(s.sections.visits.is_empty());
    assert!(s.sections.dispensings.is_empty());
    assert!(s.alerts.is_empty());
    assert_eq!(s.data_currency.claims_through, Some(d("2026-09-30")));
    assert!(s.data_currency.note_ja.contains("1か月"));
}

#[test]
fn e_prescriptions_show_for_45_days_in_summary_and_100_in_full() {
    let records = MedicalRecords {
        dispensings: vec![
            dispensing(
                "2171022F2025",
                "アムロジン錠5mg",
                d("2026-11-20"),
                7,
                Source::EPrescription,
            ),
            dispensing(
                "2171022F2025",
                "アムロジン錠5mg",
                d("2026-09-01"),
                7,
                Source::EPrescription,
            ),
        ],
        ..Default::default()
    };
    let table = AlertTable::builtin().unwrap();
    let s = build_summary(&person(), &records, View::Summary, today(), None, &table);
    assert_eq!(s.sections.dispensings.len(), 1);
    let f = build_summary(&person(), &records, View::Full, today(), None, &table);
    assert_eq!(f.sections.dispensings.len(), 2);
}

#[test]
fn anticoagulant_with_long_supply_still_alerts() {
    // 90 days of warfarin dispensed four months ago still covers the last three months.
    let records = MedicalRecords {
        dispensings: vec![dispensing(
            "3332001F1083",
            "ワルファリンK錠1mg",
            d("2026-07-20"),
            90,
            Source::Claims,
        )],
        ..Default::default()
    };
    assert_eq!(alert_ids(&records), vec!["vka"]);
    // A 14-day supply from the same date has run out.
    let records = MedicalRecords {
        dispensings: vec![dispensing(
            "3332001F1083",
            "ワルファリンK錠1mg",
            d("2026-07-20"),
            14,
            Source::Claims,
        )],
        ..Default::default()
    };
    assert!(alert_ids(&records).is_empty());
}

#[test]
fn alerts_come_in_table_order_with_evidence() {
    let records = MedicalRecords {
        dispensings: vec![
            dispensing(
                "3962002F2027",
                "メトグルコ錠250mg",
                d("2026-10-01"),
                28,
                Source::Claims,
            ),
            dispensing(
                "3339004F1029",
                "エリキュース錠5mg",
                d("2026-10-01"),
                28,
                Source::Claims,
            ),
            dispensing(
                "3339004F1029",
                "エリキュース錠5mg",
                d("2026-09-01"),
                28,
                Source::Claims,
            ),
        ],
        ..Default::default()
    };
    let table = AlertTable::builtin().unwrap();
    let s = build_summary(&person(), &records, View::Summary, today(), None, &table);
    let ids: Vec<_> = s.alerts.iter().map(|a| a.class.as_str()).collect();
    assert_eq!(ids, ["doac", "biguanide"]);
    // One evidence line per drug, newest first.
    assert_eq!(s.alerts[0].evidence.len(), 1);
    assert_eq!(s.alerts[0].evidence[0].service_date, d("2026-10-01"));
    assert_eq!(s.alert_table_version, table.version);
}

#[test]
fn dialysis_records_raise_the_dialysis_alert() {
    let hd = |date: &str| Dialysis {
        service_date: d(date),
        available_on: d(date) + Days::new(40),
        modality: DialysisModality::Hemodialysis,
        sessions: 13,
        institution: clinic(),
        source: Source::Claims,
    };
    assert_eq!(
        alert_ids(&MedicalRecords {
            dialysis: vec![hd("2026-09-15")],
            ..Default::default()
        }),
        vec!["dialysis"]
    );
    // Dialysis that ended a year ago is history, not an alert.
    assert!(
        alert_ids(&MedicalRecords {
            dialysis: vec![hd("2025-09-15")],
            ..Default::default()
        })
        .is_empty()
    );
}

#[test]
fn surgery_within_90_days_alerts_and_older_surgery_stays_in_the_list() {
    let recent = MedicalRecords {
        procedures: vec![surgery(d("2026-09-10"))],
        ..Default::default()
    };
    assert_eq!(alert_ids(&recent), vec!["recent_surgery"]);
    let older = MedicalRecords {
        procedures: vec![surgery(d("2026-08-01")), surgery(d("2022-03-01"))],
        ..Default::default()
    };
    assert!(alert_ids(&older).is_empty());
    let table = AlertTable::builtin().unwrap();
    let s = build_summary(&person(), &older, View::Summary, today(), None, &table);
    assert_eq!(s.sections.surgeries.len(), 2, "surgery window is 5 years");
}

#[test]
fn summary_shows_latest_health_check_and_full_shows_five() {
    let hc = |y: i32| HealthCheck {
        service_date: NaiveDate::from_ymd_opt(y, 6, 1).unwrap(),
        available_on: NaiveDate::from_ymd_opt(y, 9, 1).unwrap(),
        height_cm: 155.0,
        weight_kg: 50.0,
        systolic_mmhg: 130,
        diastolic_mmhg: 80,
        hba1c_percent: Some(5.6),
        ldl_mg_dl: Some(120),
        egfr: Some(70.0),
        urine_protein: "-".into(),
        source: Source::Insurer,
    };
    let records = MedicalRecords {
        health_checks: (2019..=2026).map(hc).collect(),
        ..Default::default()
    };
    let table = AlertTable::builtin().unwrap();
    let s = build_summary(&person(), &records, View::Summary, today(), None, &table);
    assert_eq!(s.sections.health_checks.len(), 1);
    assert_eq!(s.sections.health_checks[0].service_date, d("2026-06-01"));
    let f = build_summary(&person(), &records, View::Full, today(), None, &table);
    assert_eq!(f.sections.health_checks.len(), 5);
    assert!((s.sections.health_checks[0].bmi() - 20.8).abs() < 0.01);
}

#[test]
fn fetch_plan_covers_every_section_and_the_alert_windows() {
    let table = AlertTable::builtin().unwrap();
    for view in [View::Summary, View::Full] {
        let plan = Windows::for_view(view).fetch_plan(today());
        let w = Windows::for_view(view);
        for (section, from) in [
            (w.visits, plan.visits_from),
            (w.claims_drugs, plan.dispensings_from),
            (w.e_prescriptions, plan.dispensings_from),
            (w.surgeries, plan.procedures_from),
            (w.procedures, plan.procedures_from),
            (w.dialysis, plan.dialysis_from),
        ] {
            assert!(
                from <= section.start(today()).unwrap(),
                "{view:?}: reads from {from}, window {section:?}"
            );
        }
        // Alerts look back over the table's drug windows, plus the longest supply.
        let alert_from = today()
            .checked_sub_months(chrono::Months::new(table.claims_drug_window_months))
            .unwrap()
            - Days::new(u64::from(myna_domain::summary::MAX_SUPPLY_DAYS));
        assert!(plan.dispensings_from <= alert_from, "{view:?}");
        assert!(
            plan.dialysis_from
                <= today()
                    .checked_sub_months(chrono::Months::new(table.claims_drug_window_months))
                    .unwrap()
        );
    }
    assert_eq!(
        Windows::for_view(View::Summary)
            .fetch_plan(today())
            .health_check_rounds,
        1
    );
    assert_eq!(
        Windows::for_view(View::Full)
            .fetch_plan(today())
            .health_check_rounds,
        5
    );
}

#[test]
fn record_checks_refuse_impossible_supplies_and_dates() {
    let ok = dispensing(
        "3339004F1029",
        "エリキュース錠5mg",
        d("2026-10-01"),
        28,
        Source::Claims,
    );
    let with = |f: &dyn Fn(&mut Dispensing)| {
        let mut x = ok.clone();
        f(&mut x);
        MedicalRecords {
            dispensings: vec![x],
            ..Default::default()
        }
    };
    assert!(with(&|_| {}).check().is_ok());
    assert!(with(&|x| x.days = 0).check().is_err());
    assert!(with(&|x| x.days = 181).check().is_err());
    assert!(with(&|x| x.available_on = d("2026-09-30")).check().is_err());
    // Even an unchecked absurd supply cannot panic the alert rules.
    let mut huge = ok.clone();
    huge.days = u32::MAX;
    assert_eq!(huge.supply_end(), NaiveDate::MAX);
    let records = MedicalRecords {
        dispensings: vec![huge],
        ..Default::default()
    };
    assert_eq!(alert_ids(&records), vec!["doac"]);
}

fn claimed(code: &str, name: &str, kind: ProcedureKind, service: NaiveDate) -> Procedure {
    Procedure {
        service_date: service,
        available_on: service + Days::new(40),
        kind,
        code: code.into(),
        name: name.into(),
        institution: clinic(),
        source: Source::Claims,
    }
}

#[test]
fn a_pacemaker_follow_up_fee_within_five_years_flags_the_device() {
    let fee = |date| {
        claimed(
            "113030210",
            "心臓ペースメーカー指導管理料（ペースメーカー）",
            ProcedureKind::Procedure,
            date,
        )
    };
    let mut r = MedicalRecords::default();
    r.procedures.push(fee(d("2022-06-01")));
    assert_eq!(alert_ids(&r), ["cardiac_device"]);
    // Older than 60 months: no flag. A claim not yet available: no flag either.
    let mut old = MedicalRecords::default();
    old.procedures.push(fee(d("2021-10-01")));
    assert!(alert_ids(&old).is_empty());
    let mut fresh = MedicalRecords::default();
    fresh.procedures.push(fee(d("2026-11-01")));
    assert!(alert_ids(&fresh).is_empty());
    // An implantation is a surgery and a device: both flags, device first.
    let mut implant = MedicalRecords::default();
    implant.procedures.push(claimed(
        "150140210",
        "ペースメーカー移植術（経静脈電極）",
        ProcedureKind::Surgery,
        d("2026-09-01"),
    ));
    assert_eq!(alert_ids(&implant), ["recent_surgery", "cardiac_device"]);
}

#[test]
fn home_oxygen_counts_for_three_months_and_cpap_never() {
    let hot = |date| {
        claimed(
            "114003710",
            "在宅酸素療法指導管理料（その他）",
            ProcedureKind::Procedure,
            date,
        )
    };
    let mut r = MedicalRecords::default();
    r.procedures.push(hot(d("2026-09-10")));
    assert_eq!(alert_ids(&r), ["home_respiratory"]);
    let mut stopped = MedicalRecords::default();
    stopped.procedures.push(hot(d("2026-07-10")));
    assert!(alert_ids(&stopped).is_empty());
    let mut cpap = MedicalRecords::default();
    cpap.procedures.push(claimed(
        "114040810",
        "在宅持続陽圧呼吸療法指導管理料２",
        ProcedureKind::Procedure,
        d("2026-09-10"),
    ));
    assert!(alert_ids(&cpap).is_empty());
}

#[test]
fn an_auto_injector_counts_for_twelve_months_whatever_its_supply() {
    let pen = |date| {
        dispensing(
            "2451402G3026",
            "エピペン注射液0.3mg",
            date,
            1,
            Source::Claims,
        )
    };
    let mut r = MedicalRecords::default();
    r.dispensings.push(pen(d("2026-01-15")));
    assert_eq!(alert_ids(&r), ["anaphylaxis"]);
    let mut old = MedicalRecords::default();
    old.dispensings.push(pen(d("2025-10-01")));
    assert!(alert_ids(&old).is_empty());
}

#[test]
fn a_rescue_suppository_counts_while_kept_at_home() {
    // Two doses dispensed eight months ago: past any days' supply, still in the house.
    let supp = |date| dispensing("1124701J2029", "ダイアップ坐剤6", date, 2, Source::Claims);
    let mut r = MedicalRecords::default();
    r.dispensings.push(supp(d("2026-03-20")));
    assert_eq!(alert_ids(&r), ["antiepileptic", "sedative_hypnotic"]);
    let mut old = MedicalRecords::default();
    old.dispensings.push(supp(d("2025-10-20")));
    assert!(alert_ids(&old).is_empty());
    // A sleeping tablet of the same class keeps its supply window.
    let mut tablet = MedicalRecords::default();
    tablet.dispensings.push(dispensing(
        "1124009F1223",
        "レンドルミン錠0.25mg",
        d("2026-03-20"),
        28,
        Source::Claims,
    ));
    assert!(alert_ids(&tablet).is_empty());
}

#[test]
fn a_kept_window_never_shortens_a_running_supply() {
    let table = AlertTable::from_toml(
        "version = \"t\"\nsource = \"t\"\nclaims_drug_window_months = 3\n\
         e_prescription_window_days = 45\n[[class]]\nid = \"vka\"\nlabel_ja = \"x\"\n\
         label_en = \"x\"\nwhy_ja = \"x\"\nwhy_en = \"x\"\nsource = \"x\"\n\
         ingredients = [\"3332001\"]\nkept = [{ ingredients = [\"3332001\"], months = 1 }]\n",
    )
    .unwrap();
    let mut r = MedicalRecords::default();
    // 90 days dispensed three months ago: the supply runs to next week.
    r.dispensings.push(dispensing(
        "3332001F1083",
        "ワーファリン錠1mg",
        d("2026-09-01"),
        90,
        Source::Claims,
    ));
    let s = build_summary(&person(), &r, View::Summary, today(), None, &table);
    assert_eq!(s.alerts.len(), 1, "the running supply still counts");
}

#[test]
fn future_dated_records_raise_nothing() {
    let mut r = MedicalRecords::default();
    let mut op = surgery(d("2026-12-20"));
    op.available_on = d("2026-11-01");
    r.procedures.push(op);
    assert!(alert_ids(&r).is_empty());
}

#[test]
fn anticoagulant_alerts_name_the_reversal_agent_of_each_drug() {
    let table = AlertTable::builtin().unwrap();
    let mut r = MedicalRecords::default();
    for (yj, name) in [
        ("3339001M1024", "プラザキサカプセル75mg"),
        ("3339004F1029", "エリキュース錠2.5mg"),
        ("3332001F1083", "ワーファリン錠1mg"),
    ] {
        r.dispensings
            .push(dispensing(yj, name, d("2026-10-01"), 28, Source::Claims));
    }
    let s = build_summary(&person(), &r, View::Summary, today(), None, &table);
    let reversal = |name: &str| {
        s.alerts
            .iter()
            .flat_map(|a| &a.evidence)
            .find(|e| e.text == name)
            .and_then(|e| e.reversal_en.clone())
            .unwrap()
    };
    assert!(reversal("プラザキサカプセル75mg").contains("idarucizumab"));
    assert!(reversal("エリキュース錠2.5mg").contains("andexanet"));
    assert!(reversal("ワーファリン錠1mg").contains("vitamin K"));
    assert!(reversal("ワーファリン錠1mg").contains("PCC"));
}

#[test]
fn classifying_the_codes_once_gives_the_same_alerts_as_the_rules() {
    let mut r = MedicalRecords::default();
    for (yj, name) in [
        ("3339004F1029", "エリキュース錠2.5mg"),
        ("1124701J2029", "ダイアップ坐剤6"),
        ("2171022F2025", "アムロジピン"),
    ] {
        r.dispensings
            .push(dispensing(yj, name, d("2026-10-01"), 28, Source::Claims));
    }
    let rules = AlertTable::builtin().unwrap();
    let mut indexed = AlertTable::builtin().unwrap();
    let codes: Vec<YjCode> = r.dispensings.iter().map(|x| x.drug.yj.clone()).collect();
    indexed.classify_codes(&codes);
    assert_eq!(indexed.classified_codes(), 3);
    let a = build_summary(&person(), &r, View::Summary, today(), None, &rules).alerts;
    let b = build_summary(&person(), &r, View::Summary, today(), None, &indexed).alerts;
    assert_eq!(a, b);
    let ids: Vec<&str> = a.iter().map(|x| x.class.as_str()).collect();
    assert_eq!(ids, ["doac", "antiepileptic", "sedative_hypnotic"]);
}

fn hospital_visit(code: &str, name: &str, department: &str, service: NaiveDate) -> Visit {
    Visit {
        institution: Institution {
            code: code.into(),
            name: name.into(),
            kind: InstitutionKind::Hospital,
        },
        department: department.into(),
        ..visit(service)
    }
}

#[test]
fn visits_group_by_institution_and_department_with_the_kakaritsuke_first() {
    use myna_domain::summary::{group_visits, kakaritsuke};
    let mut visits = Vec::new();
    // Monthly at the clinic this year; twice at the hospital, the latest last week.
    for m in 1..=9 {
        visits.push(visit(d(&format!("2026-{m:02}-10"))));
    }
    visits.push(hospital_visit(
        "1419800005",
        "関東労災病院",
        "循環器内科",
        d("2026-03-02"),
    ));
    visits.push(hospital_visit(
        "1419800005",
        "関東労災病院",
        "循環器内科",
        d("2026-10-01"),
    ));
    visits.push(hospital_visit(
        "1419800005",
        "関東労災病院",
        "整形外科",
        d("2025-01-05"),
    ));
    let groups = group_visits(&visits, today());
    assert_eq!(groups.len(), 3);
    assert!(groups[0].kakaritsuke);
    assert_eq!(groups[0].institution.code, clinic().code);
    assert_eq!(groups[0].visits, 9);
    assert_eq!(groups[0].last, d("2026-09-10"));
    assert_eq!(
        (groups[1].department.as_str(), groups[1].visits),
        ("循環器内科", 2)
    );
    assert_eq!(groups[2].department, "整形外科");
    assert_eq!(groups.iter().filter(|g| g.kakaritsuke).count(), 1);
    // The same institutions, most visited first, for hospital selection; older than 12
    // months does not count.
    let k = kakaritsuke(&visits, today());
    assert_eq!(k.len(), 2);
    assert_eq!(k[0].institution_code, clinic().code);
    assert_eq!(
        (k[1].institution_code.as_str(), k[1].visits, k[1].last_visit),
        ("1419800005", 2, d("2026-10-01"))
    );
    // A claim not yet available is not shown.
    let mut late = visits.clone();
    let mut future = hospital_visit("1419800001", "川崎市立川崎病院", "内科", d("2026-11-20"));
    future.available_on = d("2026-12-25");
    late.push(future);
    assert_eq!(group_visits(&late, today()).len(), 3);
}

#[test]
fn drugs_group_by_product_with_running_supplies_first() {
    use myna_domain::summary::group_drugs;
    let mut ds = Vec::new();
    for m in 6..=10 {
        ds.push(dispensing(
            "3339004F1029",
            "エリキュース錠2.5mg",
            d(&format!("2026-{m:02}-01")),
            28,
            Source::Claims,
        ));
    }
    ds.push(dispensing(
        "1149019F1560",
        "ロキソニン錠60mg",
        d("2026-02-01"),
        5,
        Source::Claims,
    ));
    // Dispensed 2026-10-01 for 60 days: runs until 2026-11-29.
    ds.push(dispensing(
        "2171022F2025",
        "アムロジピン錠5mg",
        d("2026-10-01"),
        60,
        Source::Claims,
    ));
    let groups = group_drugs(&ds, today());
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0].drug.name, "アムロジピン錠5mg");
    assert!(groups[0].running);
    let apixaban = &groups[1];
    assert_eq!(apixaban.dispensings, 5);
    assert_eq!(
        (apixaban.first, apixaban.last),
        (d("2026-06-01"), d("2026-10-01"))
    );
    assert!(
        !apixaban.running,
        "28 days from 2026-10-01 ended before today"
    );
    assert!(!groups[2].running);
}

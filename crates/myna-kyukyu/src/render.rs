//! Plain-text rendering of a summary for the terminal, alerts first.

use myna_domain::records::{CareSetting, ProcedureKind};
use myna_domain::summary::{EmergencySummary, View};
use std::fmt::Write;

pub fn summary_text(s: &EmergencySummary) -> String {
    let mut o = String::new();
    let p = &s.patient;
    let title = match s.view {
        View::Summary => "救急用サマリー",
        View::Full => "全量版",
    };
    let _ = writeln!(o, "━━━ {title}  {} ━━━", s.as_of);
    let _ = writeln!(
        o,
        "{}（{}） {}歳 {}  生年月日 {}",
        p.name,
        p.name_kana,
        p.age,
        p.sex.label_ja(),
        p.birth_date
    );
    let _ = writeln!(o, "住所 {}", p.address);
    let _ = writeln!(
        o,
        "保険者番号 {} {}  記号 {} 番号 {}",
        p.coverage.insurer_number, p.coverage.insurer_name, p.coverage.symbol, p.coverage.number
    );
    if s.alerts.is_empty() {
        let _ = writeln!(o, "\n警告なし");
    } else {
        let _ = writeln!(o, "\n⚠ 警告 ({})", s.alerts.len());
        for a in &s.alerts {
            let _ = writeln!(o, "  ■ {} — {}", a.label_ja, a.why_ja);
            for e in &a.evidence {
                let _ = writeln!(
                    o,
                    "      {}  {}  [{}]",
                    e.service_date,
                    e.text,
                    e.source.label_ja()
                );
                if let Some(agent) = &e.reversal_ja {
                    let _ = writeln!(o, "        拮抗薬: {agent}");
                }
            }
        }
    }
    let sec = &s.sections;
    let _ = writeln!(o, "\n受診歴 ({})", sec.visits.len());
    for v in &sec.visits {
        let setting = if v.setting == CareSetting::Inpatient {
            "入院"
        } else {
            "外来"
        };
        let _ = writeln!(
            o,
            "  {}  {} {} {}  [{}]",
            v.service_date,
            v.institution.name,
            v.department,
            setting,
            v.source.label_ja()
        );
    }
    let _ = writeln!(o, "薬剤 ({})", sec.dispensings.len());
    for d in &sec.dispensings {
        let _ = writeln!(
            o,
            "  {}  {}  {}{}/日 × {}日  {}  [{}]",
            d.service_date,
            d.drug.name,
            d.daily_quantity,
            d.unit,
            d.days,
            d.prescriber.name,
            d.source.label_ja()
        );
    }
    let _ = writeln!(o, "手術 ({})", sec.surgeries.len());
    for p in sec.surgeries.iter().chain(sec.procedures.iter()) {
        let kind = if p.kind == ProcedureKind::Surgery {
            "手術"
        } else {
            "診療"
        };
        let _ = writeln!(
            o,
            "  {}  {} {} ({})  {}",
            p.service_date, kind, p.name, p.code, p.institution.name
        );
    }
    if !sec.dialysis.is_empty() {
        let _ = writeln!(o, "透析 ({})", sec.dialysis.len());
        for d in &sec.dialysis {
            let _ = writeln!(
                o,
                "  {}  {} {}回",
                d.service_date, d.institution.name, d.sessions
            );
        }
    }
    let _ = writeln!(o, "特定健診 ({})", sec.health_checks.len());
    for h in &sec.health_checks {
        let _ = writeln!(
            o,
            "  {}  BMI {}  血圧 {}/{}  HbA1c {}  eGFR {}",
            h.service_date,
            h.bmi(),
            h.systolic_mmhg,
            h.diastolic_mmhg,
            h.hba1c_percent.map_or("-".into(), |v| v.to_string()),
            h.egfr.map_or("-".into(), |v| v.to_string())
        );
    }
    let through = s
        .data_currency
        .claims_through
        .map_or("不明".into(), |d| d.to_string());
    let _ = writeln!(
        o,
        "\n※ {}（レセプト反映済み: {} まで）",
        s.data_currency.note_ja, through
    );
    let _ = writeln!(o, "  警告テーブル {}", s.alert_table_version);
    o
}

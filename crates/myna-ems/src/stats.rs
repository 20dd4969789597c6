//! 救急統計: the bureau's statistics dashboard on the desk (`/stats`), for its dispatchers and
//! admins. It folds the incidents' statistics rows (`EmsStore::incident_facts`, kept with
//! every append) into `myna_domain::stats::Dashboard`, draws the charts on the server with
//! plotters as SVG, and exports every chart's and table's figures as CSV
//! (`/stats/{table}.csv`).

use crate::Ems;
use crate::dispatch::Desk;
use crate::error::EmsError;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Datelike;
use myna_domain::incident::MynaOutcome;
use myna_domain::stats::{
    Dashboard, Figures, Interval, JST, Stage, minutes_seconds, percent, year_range_ms,
};
use myna_store::ems::{EmsStore, Team};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

type St<S> = State<Arc<Ems<S>>>;

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new()
        .route("/stats", get(dashboard::<S>))
        .route("/stats/{table}", get(csv_export::<S>))
}

/// The exported tables; each is a CSV at `/stats/<as_str>.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsTable {
    /// The funnel, exception views and 搬送困難 by month.
    Monthly,
    Failures,
    /// FDMA's 図表1-33.
    PhaseTimes,
    Inquiries,
    Hours,
    Teams,
    Wards,
}

impl StatsTable {
    pub const ALL: [StatsTable; 7] = [
        StatsTable::Monthly,
        StatsTable::Failures,
        StatsTable::PhaseTimes,
        StatsTable::Inquiries,
        StatsTable::Hours,
        StatsTable::Teams,
        StatsTable::Wards,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatsTable::Monthly => "monthly",
            StatsTable::Failures => "failures",
            StatsTable::PhaseTimes => "phase-times",
            StatsTable::Inquiries => "inquiries",
            StatsTable::Hours => "hours",
            StatsTable::Teams => "teams",
            StatsTable::Wards => "wards",
        }
    }

    /// From the last path segment, `<name>.csv`.
    pub fn from_file(s: &str) -> Option<Self> {
        let name = s.strip_suffix(".csv")?;
        StatsTable::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

#[derive(Deserialize)]
struct YearQuery {
    year: Option<i32>,
}

/// The year asked for, or the latest of the last five with incidents (a bureau that simulated
/// last year sees it), or this year.
async fn chosen_year<S: EmsStore>(
    ems: &Ems<S>,
    bureau: i64,
    asked: Option<i32>,
) -> Result<(i32, Vec<myna_domain::stats::IncidentFacts>), Response> {
    let this_year = ems.now().with_timezone(&JST).year();
    let years: Vec<i32> = match asked {
        Some(y) => vec![y],
        None => (this_year - 4..=this_year).rev().collect(),
    };
    for y in &years {
        let Some((from, to)) = year_range_ms(*y) else {
            return Err((StatusCode::BAD_REQUEST, "年は2000年から2100年までです").into_response());
        };
        let facts = ems
            .store
            .incident_facts(bureau, from, to)
            .await
            .map_err(|e| EmsError::from(e).into_response())?;
        if !facts.is_empty() || asked.is_some() {
            return Ok((*y, facts.into_iter().map(|(_, f)| f).collect()));
        }
    }
    Ok((this_year, Vec::new()))
}

struct Row {
    label: String,
    cells: Vec<String>,
}

struct Section {
    id: &'static str,
    title: &'static str,
    /// The chart's SVG (plotters); `None` for a table-only section.
    chart: Option<String>,
    table: StatsTable,
    head: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    bureau_name: String,
    user_name: String,
    is_admin: bool,
    csrf: String,
    year: i32,
    years: Vec<i32>,
    dispatches: u64,
    viewed: String,
    exception_views: u64,
    difficult: u64,
    /// Why the charts could not be drawn (no font), if so.
    chart_problem: Option<String>,
    sections: Vec<Section>,
}

/// Who looks at the dashboard, for its header.
pub struct Viewer {
    pub name: String,
    pub is_admin: bool,
    /// The session's form token (`myna_web::csrf`), for the sign-out button.
    pub csrf: String,
}

async fn dashboard<S: EmsStore>(
    State(ems): St<S>,
    d: Desk,
    Query(q): Query<YearQuery>,
) -> Response {
    let viewer = Viewer {
        name: d.session.account.display_name.clone(),
        is_admin: d.is_admin(),
        csrf: d.csrf.clone(),
    };
    match dashboard_html(&ems, &d.bureau, viewer, q.year).await {
        Ok(html) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            axum::response::Html(html),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// The dashboard of `bureau` for `year` (or the latest year with incidents), as HTML: the
/// whole of a request's work but the HTTP exchange (`bench stats` times it).
pub async fn dashboard_html<S: EmsStore>(
    ems: &Ems<S>,
    bureau: &myna_store::ems::Bureau,
    viewer: Viewer,
    year: Option<i32>,
) -> Result<String, Response> {
    let (year, facts) = chosen_year(ems, bureau.id, year).await?;
    let teams = ems
        .store
        .teams(bureau.id)
        .await
        .map_err(|e| EmsError::from(e).into_response())?;
    let this_year = ems.now().with_timezone(&JST).year();
    let bureau_name = bureau.name.clone();
    // The fold, six charts and the template take a CPU for about a tenth of a second: off the
    // async workers, so other requests do not wait behind them.
    let failed = |e: String| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the dashboard failed: {e}"),
        )
            .into_response()
    };
    tokio::task::spawn_blocking(move || {
        render_page(year, this_year, &facts, &teams, bureau_name, viewer)
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(failed)
}

fn render_page(
    year: i32,
    this_year: i32,
    facts: &[myna_domain::stats::IncidentFacts],
    teams: &[Team],
    bureau_name: String,
    viewer: Viewer,
) -> Result<String, String> {
    let dash = Dashboard::build(facts);
    let names = TeamNames::new(teams);
    let mut chart_problem = None;
    let mut draw = |svg: Result<String, String>| match svg {
        Ok(s) => Some(s),
        Err(e) => {
            chart_problem.get_or_insert(e);
            None
        }
    };
    let sections = vec![
        Section {
            id: "funnel",
            title: "利用ファネル（月別）",
            chart: draw(charts::monthly_funnel(&dash)),
            table: StatsTable::Monthly,
            head: monthly_head(),
            rows: monthly_rows(&dash),
        },
        Section {
            id: "failures",
            title: "閲覧に至らなかった理由",
            chart: draw(charts::failures(&dash.total)),
            table: StatsTable::Failures,
            head: vec!["理由".into(), "件数".into(), "出場に占める割合".into()],
            rows: failure_rows(&dash.total),
        },
        Section {
            id: "phases",
            title: "活動時間（マイナ救急の活用あり・なし、FDMA 図表1-33の形式）",
            chart: draw(charts::phase_times(&dash.total)),
            table: StatsTable::PhaseTimes,
            head: phase_head(),
            rows: phase_rows(&dash.total),
        },
        Section {
            id: "inquiries",
            title: "照会回数の分布と搬送困難事案",
            chart: draw(charts::inquiries(&dash.total)),
            table: StatsTable::Inquiries,
            head: vec!["照会回数".into(), "件数".into(), "割合".into()],
            rows: inquiry_rows(&dash.total),
        },
        Section {
            id: "exceptions",
            title: "同意なし（例外）閲覧の件数（月別）",
            chart: draw(charts::exception_views(&dash)),
            table: StatsTable::Monthly,
            head: Vec::new(),
            rows: Vec::new(),
        },
        Section {
            id: "hours",
            title: "覚知時刻別の出場件数",
            chart: draw(charts::hours(&dash)),
            table: StatsTable::Hours,
            head: Vec::new(),
            rows: Vec::new(),
        },
        Section {
            id: "teams",
            title: "隊別",
            chart: None,
            table: StatsTable::Teams,
            head: group_head("隊"),
            rows: dash
                .teams
                .iter()
                .map(|(id, f)| group_row(names.name(*id), f))
                .collect(),
        },
        Section {
            id: "wards",
            title: "区別（発生場所）",
            chart: None,
            table: StatsTable::Wards,
            head: group_head("区"),
            rows: dash
                .wards
                .iter()
                .map(|(w, f)| group_row(ward_label(w), f))
                .collect(),
        },
    ];
    let page = StatsPage {
        bureau_name,
        user_name: viewer.name,
        is_admin: viewer.is_admin,
        csrf: viewer.csrf,
        year,
        years: (this_year - 4..=this_year).rev().collect(),
        dispatches: dash.total.dispatches(),
        viewed: format!(
            "{}（{}）",
            dash.total.stage(Stage::Viewed),
            percent(dash.total.stage(Stage::Viewed), dash.total.dispatches())
        ),
        exception_views: dash.total.exception_views,
        difficult: dash.total.difficult,
        chart_problem,
        sections,
    };
    page.render().map_err(|e| e.to_string())
}

async fn csv_export<S: EmsStore>(
    State(ems): St<S>,
    d: Desk,
    Path(file): Path<String>,
    Query(q): Query<YearQuery>,
) -> Response {
    let Some(table) = StatsTable::from_file(&file) else {
        return (StatusCode::NOT_FOUND, "その表はありません").into_response();
    };
    let (year, facts) = match chosen_year(&ems, d.bureau.id, q.year).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let teams = match ems.store.teams(d.bureau.id).await {
        Ok(t) => t,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let dash = Dashboard::build(&facts);
    match csv_text(table, &dash, &TeamNames::new(&teams)) {
        Ok(body) => {
            let name = format!("{}-{year}-{}.csv", d.bureau.code, table.as_str());
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("CSVを書けませんでした: {e}"),
        )
            .into_response(),
    }
}

struct TeamNames(HashMap<i64, String>);

impl TeamNames {
    fn new(teams: &[Team]) -> Self {
        TeamNames(
            teams
                .iter()
                .map(|t| (t.id, format!("{} {}", t.station, t.name)))
                .collect(),
        )
    }
    fn name(&self, id: i64) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("隊 {id}"))
    }
}

fn ward_label(w: &str) -> String {
    if w.is_empty() {
        "（区の記載なし）".to_owned()
    } else {
        w.to_owned()
    }
}

fn month_label(m: u32) -> String {
    format!("{}年{}月", m / 100, m % 100)
}

fn monthly_head() -> Vec<String> {
    let mut head: Vec<String> = Stage::ALL.iter().map(|s| s.label_ja().to_owned()).collect();
    head.extend(["閲覧率".into(), "例外閲覧".into(), "搬送困難事案".into()]);
    head
}

fn monthly_cells(f: &Figures) -> Vec<String> {
    let mut cells: Vec<String> = Stage::ALL.iter().map(|s| f.stage(*s).to_string()).collect();
    cells.push(percent(f.stage(Stage::Viewed), f.dispatches()));
    cells.push(f.exception_views.to_string());
    cells.push(f.difficult.to_string());
    cells
}

fn monthly_rows(d: &Dashboard) -> Vec<Row> {
    let mut rows: Vec<Row> = d
        .months
        .iter()
        .map(|(m, f)| Row {
            label: month_label(*m),
            cells: monthly_cells(f),
        })
        .collect();
    rows.push(Row {
        label: "年計".into(),
        cells: monthly_cells(&d.total),
    });
    rows
}

/// The reasons a dispatch did not end in a view, in the funnel's order, then those with no
/// outcome recorded (不搬送 and the like).
fn failure_reasons(f: &Figures) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = MynaOutcome::ALL
        .iter()
        .filter(|o| **o != MynaOutcome::Viewed)
        .map(|o| (o.label_ja().to_owned(), f.failure(*o)))
        .collect();
    out.push(("記録なし（不搬送等）".into(), f.unrecorded));
    out
}

fn failure_rows(f: &Figures) -> Vec<Row> {
    failure_reasons(f)
        .into_iter()
        .map(|(label, n)| Row {
            label,
            cells: vec![n.to_string(), percent(n, f.dispatches())],
        })
        .collect()
}

fn phase_head() -> Vec<String> {
    let mut head = vec!["件数".to_owned()];
    head.extend(Interval::ALL.iter().map(|i| i.label_ja().to_owned()));
    head
}

fn phase_rows(f: &Figures) -> Vec<Row> {
    let mean = |s: myna_domain::stats::IntervalSum| s.mean_s().map_or("—".into(), minutes_seconds);
    let used = f.stage(Stage::Viewed);
    // (label, incidents, whether used: None for all)
    let groups = [
        ("全体", f.dispatches(), None),
        ("活用あり", used, Some(true)),
        ("活用なし", f.dispatches() - used, Some(false)),
    ];
    groups
        .iter()
        .map(|(label, n, used)| {
            let mut cells = vec![n.to_string()];
            cells.extend(Interval::ALL.iter().map(|i| {
                mean(match used {
                    None => f.all(*i),
                    Some(u) => f.interval(*i, *u),
                })
            }));
            Row {
                label: (*label).to_owned(),
                cells,
            }
        })
        .collect()
}

const INQUIRY_LABELS: [&str; 5] = ["0回（不搬送等）", "1回", "2回", "3回", "4回以上"];

fn inquiry_rows(f: &Figures) -> Vec<Row> {
    let mut rows: Vec<Row> = INQUIRY_LABELS
        .iter()
        .zip(f.inquiries)
        .map(|(label, n)| Row {
            label: (*label).to_owned(),
            cells: vec![n.to_string(), percent(n, f.dispatches())],
        })
        .collect();
    rows.push(Row {
        label: "搬送困難事案（照会4回以上かつ現場滞在30分以上）".into(),
        cells: vec![
            f.difficult.to_string(),
            percent(f.difficult, f.dispatches()),
        ],
    });
    rows
}

fn group_head(what: &str) -> Vec<String> {
    vec![
        what.to_owned(),
        "出場".into(),
        "実施".into(),
        "閲覧".into(),
        "閲覧率".into(),
        "例外閲覧".into(),
        "搬送困難事案".into(),
        "現場滞在（平均）".into(),
    ]
}

fn group_row(label: String, f: &Figures) -> Row {
    Row {
        label,
        cells: vec![
            f.dispatches().to_string(),
            f.stage(Stage::Attempted).to_string(),
            f.stage(Stage::Viewed).to_string(),
            percent(f.stage(Stage::Viewed), f.dispatches()),
            f.exception_views.to_string(),
            f.difficult.to_string(),
            f.all(Interval::ArrivalToDeparture)
                .mean_s()
                .map_or("—".into(), minutes_seconds),
        ],
    }
}

/// The table as CSV: UTF-8 with a byte-order mark, which Excel in Japan needs to read it as
/// UTF-8 rather than Shift_JIS.
fn csv_text(table: StatsTable, d: &Dashboard, teams: &TeamNames) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // A cell that a spreadsheet would run as a formula (a name an admin typed, one day) is
    // written as text.
    let defused = |cell: String| {
        if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{cell}")
        } else {
            cell
        }
    };
    let mut write = |record: Vec<String>| {
        w.write_record(record.into_iter().map(defused))
            .map_err(|e| e.to_string())
    };
    let with_label = |first: &str, head: Vec<String>| {
        let mut v = vec![first.to_owned()];
        v.extend(head);
        v
    };
    let rows = |rows: Vec<Row>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|r| {
                let mut v = vec![r.label];
                v.extend(r.cells);
                v
            })
            .collect()
    };
    let (head, body) = match table {
        StatsTable::Monthly => (with_label("月", monthly_head()), rows(monthly_rows(d))),
        StatsTable::Failures => (
            vec!["理由".into(), "件数".into(), "出場に占める割合".into()],
            rows(failure_rows(&d.total)),
        ),
        StatsTable::PhaseTimes => (with_label("区分", phase_head()), rows(phase_rows(&d.total))),
        StatsTable::Inquiries => (
            vec!["照会回数".into(), "件数".into(), "割合".into()],
            rows(inquiry_rows(&d.total)),
        ),
        StatsTable::Hours => (
            vec!["時".into(), "出場".into()],
            d.hours
                .iter()
                .enumerate()
                .map(|(h, n)| vec![h.to_string(), n.to_string()])
                .collect(),
        ),
        StatsTable::Teams => (
            group_head("隊"),
            rows(
                d.teams
                    .iter()
                    .map(|(id, f)| group_row(teams.name(*id), f))
                    .collect(),
            ),
        ),
        StatsTable::Wards => (
            group_head("区"),
            rows(
                d.wards
                    .iter()
                    .map(|(w, f)| group_row(ward_label(w), f))
                    .collect(),
            ),
        ),
    };
    write(head)?;
    for r in body {
        write(r)?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
    Ok(format!("\u{feff}{text}"))
}

/// The charts, drawn by plotters into SVG strings. Text is measured with IPAex Gothic (the
/// font the handoff PDF embeds); the browser draws it with its own Japanese font.
mod charts {
    use super::{Dashboard, Figures, INQUIRY_LABELS, Interval, Stage, failure_reasons};
    use plotters::prelude::*;

    const WIDTH: u32 = 760;
    const COLORS: [RGBColor; 6] = [
        RGBColor(0x1f, 0x4e, 0x79),
        RGBColor(0x2e, 0x75, 0xb6),
        RGBColor(0x9d, 0xc3, 0xe6),
        RGBColor(0xf4, 0xb1, 0x83),
        RGBColor(0xc5, 0x5a, 0x11),
        RGBColor(0x70, 0xad, 0x47),
    ];

    /// Registers the font once; the error says what to install.
    fn font() -> Result<(), String> {
        super::FONT
            .get_or_init(|| {
                for path in myna_report::FONT_FILES {
                    let Ok(bytes) = std::fs::read(path) else {
                        continue;
                    };
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                        .is_ok()
                    {
                        return Ok(());
                    }
                }
                Err("グラフの文字を測るフォントがありません（fonts-ipaexfont-gothic を入れてください）"
                    .to_owned())
            })
            .clone()
    }

    fn err(e: impl std::fmt::Display) -> String {
        format!("グラフを描けません: {e}")
    }

    /// Bars for `labels`, one group per label with one bar per series.
    fn bars(
        title: &str,
        labels: &[String],
        series: &[(&str, Vec<f64>)],
        y_desc: &str,
        height: u32,
    ) -> Result<String, String> {
        font()?;
        let top = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.1;
        let n = labels.len().max(1);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(46)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..n as f64, 0f64..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = x.floor();
                    if (x - i - 0.5).abs() < 1e-6 && i >= 0.0 {
                        labels.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_desc(y_desc)
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(err)?;
            let k = series.len().max(1) as f64;
            for (s, (name, values)) in series.iter().enumerate() {
                let color = COLORS[s % COLORS.len()];
                let width = 0.8 / k;
                chart
                    .draw_series(values.iter().enumerate().map(|(i, v)| {
                        let x0 = i as f64 + 0.1 + s as f64 * width;
                        Rectangle::new([(x0, 0.0), (x0 + width * 0.92, *v)], color.filled())
                    }))
                    .map_err(err)?
                    .label(*name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
            }
            if series.len() > 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }

    fn month_labels(d: &Dashboard) -> Vec<String> {
        d.months
            .iter()
            .map(|(m, _)| format!("{}月", m % 100))
            .collect()
    }

    pub fn monthly_funnel(d: &Dashboard) -> Result<String, String> {
        let series: Vec<(&str, Vec<f64>)> = Stage::ALL
            .iter()
            .map(|s| {
                (
                    s.label_ja(),
                    d.months.iter().map(|(_, f)| f.stage(*s) as f64).collect(),
                )
            })
            .collect();
        bars("月別 利用ファネル", &month_labels(d), &series, "件数", 340)
    }

    pub fn failures(f: &Figures) -> Result<String, String> {
        let reasons = failure_reasons(f);
        let labels: Vec<String> = reasons.iter().map(|(l, _)| l.clone()).collect();
        let values: Vec<f64> = reasons.iter().map(|(_, n)| *n as f64).collect();
        bars(
            "閲覧に至らなかった理由（年計）",
            &labels,
            &[("件数", values)],
            "件数",
            340,
        )
    }

    pub fn phase_times(f: &Figures) -> Result<String, String> {
        let labels: Vec<String> = Interval::ALL
            .iter()
            .map(|i| i.label_ja().to_owned())
            .collect();
        let mean = |used: bool| -> Vec<f64> {
            Interval::ALL
                .iter()
                .map(|i| f.interval(*i, used).mean_s().unwrap_or(0) as f64 / 60.0)
                .collect()
        };
        bars(
            "活動時間の平均（分）",
            &labels,
            &[("活用あり", mean(true)), ("活用なし", mean(false))],
            "分",
            320,
        )
    }

    pub fn inquiries(f: &Figures) -> Result<String, String> {
        let labels: Vec<String> = INQUIRY_LABELS.iter().map(|l| (*l).to_owned()).collect();
        let values: Vec<f64> = f.inquiries.iter().map(|n| *n as f64).collect();
        bars(
            "照会回数の分布（年計）",
            &labels,
            &[("件数", values)],
            "件数",
            300,
        )
    }

    pub fn exception_views(d: &Dashboard) -> Result<String, String> {
        let values: Vec<f64> = d
            .months
            .iter()
            .map(|(_, f)| f.exception_views as f64)
            .collect();
        bars(
            "同意なし（例外）閲覧",
            &month_labels(d),
            &[("件数", values)],
            "件数",
            280,
        )
    }

    pub fn hours(d: &Dashboard) -> Result<String, String> {
        let labels: Vec<String> = (0..24).map(|h| h.to_string()).collect();
        let values: Vec<f64> = d.hours.iter().map(|n| *n as f64).collect();
        bars(
            "覚知時刻別（時）",
            &labels,
            &[("出場", values)],
            "件数",
            280,
        )
    }
}

/// Whether the chart font registered (once per process).
static FONT: OnceLock<Result<(), String>> = OnceLock::new();

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use myna_domain::stats::IncidentFacts;

    fn facts(month: u32, outcome: Option<MynaOutcome>, views: u32) -> IncidentFacts {
        let created = JST
            .with_ymd_and_hms(2025, month, 10, 10, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        IncidentFacts {
            created_ms: created,
            team: Some(1),
            ward: Some("中原区".into()),
            outcome,
            consent_or_exception: views > 0,
            views,
            exception_views: views,
            intervals_s: [Some(60), Some(300), Some(700), Some(1060)],
            inquiries: 2,
            difficult: false,
            transported: true,
        }
    }

    #[test]
    fn every_table_has_a_file_name_and_back() {
        for t in StatsTable::ALL {
            assert_eq!(
                StatsTable::from_file(&format!("{}.csv", t.as_str())),
                Some(t)
            );
        }
        assert_eq!(StatsTable::from_file("monthly"), None);
        assert_eq!(StatsTable::from_file("../monthly.csv"), None);
    }

    #[test]
    fn the_csv_carries_the_dashboards_figures_with_a_bom() {
        let f = [
            facts(1, Some(MynaOutcome::Viewed), 1),
            facts(1, Some(MynaOutcome::NoCard), 0),
            facts(3, None, 0),
        ];
        let d = Dashboard::build(&f);
        let names = TeamNames(HashMap::from([(1, "中原消防署 中原救急1".to_owned())]));
        let monthly = csv_text(StatsTable::Monthly, &d, &names).unwrap();
        assert!(monthly.starts_with('\u{feff}'));
        let lines: Vec<&str> = monthly.lines().collect();
        assert_eq!(
            lines[0].trim_start_matches('\u{feff}'),
            "月,出場,実施,カード所持,保険証利用登録あり,同意・例外,閲覧,閲覧率,例外閲覧,搬送困難事案"
        );
        assert_eq!(lines[1], "2025年1月,2,2,1,1,1,1,50.0%,1,0");
        assert_eq!(lines[2], "2025年3月,1,0,0,0,0,0,0.0%,0,0");
        assert_eq!(lines[3], "年計,3,2,1,1,1,1,33.3%,1,0");
        let teams = csv_text(StatsTable::Teams, &d, &names).unwrap();
        assert!(teams.contains("中原消防署 中原救急1,3,2,1,33.3%,1,0,17:40"));
        let phases = csv_text(StatsTable::PhaseTimes, &d, &names).unwrap();
        assert!(
            phases.contains("活用あり,1,1:00,5:00,11:40,17:40"),
            "{phases}"
        );
    }

    #[test]
    fn a_name_a_spreadsheet_would_run_is_written_as_text() {
        let d = Dashboard::build(&[facts(1, None, 0)]);
        let names = TeamNames(HashMap::from([(1, "=HYPERLINK(\"x\")".to_owned())]));
        let teams = csv_text(StatsTable::Teams, &d, &names).unwrap();
        assert!(teams.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{teams}");
        assert!(!teams.lines().any(|l| l.starts_with('=')));
    }

    #[test]
    fn charts_are_svg_with_their_japanese_titles() {
        let f = [facts(1, Some(MynaOutcome::Viewed), 1), facts(2, None, 0)];
        let d = Dashboard::build(&f);
        let svg = charts::monthly_funnel(&d).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("月別 利用ファネル"));
        assert!(svg.contains("<rect"), "bars are drawn");
        assert!(charts::phase_times(&d.total).unwrap().contains("活用なし"));
    }
}

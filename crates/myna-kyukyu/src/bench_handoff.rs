//! `bench handoff`: building the FHIR handoff document and typesetting its PDF for synthetic
//! patients (the sample incident, each person's own summary). The first PDF of a process
//! (fonts loaded, typst's caches cold) is reported apart. A benchmark, not a test.

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use myna_domain::access::Consent;
use myna_domain::alerts::AlertTable;
use myna_domain::summary::{View, build_summary};
use myna_fhir::sample::{handed_off_incident, sample_bundle};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct HandoffBenchArgs {
    /// Documents to make (one synthetic person each).
    #[arg(long, default_value_t = 50)]
    pub runs: u64,
}

pub fn run(args: HandoffBenchArgs) -> Result<ExitCode> {
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 24).context("date")?;
    let generator = myna_synth::Generator::new(7, as_of)?;
    let table = AlertTable::builtin()?;
    let t = Instant::now();
    let fonts = myna_report::Fonts::system()?;
    let font_load = t.elapsed();
    let (mut fhir, mut pdf, mut pages, mut bytes) = (Vec::new(), Vec::new(), 0, 0);
    let mut first = None;
    for i in 0..args.runs.max(1) {
        let p = generator.person(i);
        let summary = build_summary(&p.person, &p.records, View::Summary, as_of, None, &table);
        let patient =
            myna_domain::patient::PatientSecret::from_bytes([7; 32]).patient(&p.cert_serial);
        let log = handed_off_incident(&patient).map_err(|e| anyhow!("{e}"))?;
        let t = Instant::now();
        let bundle = sample_bundle(&log, &summary, Consent::Obtained).map_err(|e| anyhow!(e))?;
        fhir.push(t.elapsed());
        let t = Instant::now();
        let (doc, n) = myna_report::handoff_pdf(&bundle, fonts, (2026, 11, 24))?;
        let took = t.elapsed();
        if first.is_none() {
            first = Some(took);
        } else {
            pdf.push(took);
        }
        pages += n;
        bytes += doc.len();
    }
    fhir.sort();
    pdf.sort();
    let ms = |v: &[Duration], q: f64| crate::quantile::nearest_rank(v, q).as_secs_f64() * 1e3;
    println!(
        "font load ({}): {:.0} ms; first PDF: {:.0} ms",
        fonts.family(),
        font_load.as_secs_f64() * 1e3,
        first.unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "FHIR document, {} runs: p50 {:.2} ms  p99 {:.2} ms",
        fhir.len(),
        ms(&fhir, 0.5),
        ms(&fhir, 0.99)
    );
    if !pdf.is_empty() {
        println!(
            "PDF, {} further runs: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms; {:.1} pages and {:.0} KB on average",
            pdf.len(),
            ms(&pdf, 0.5),
            ms(&pdf, 0.99),
            ms(&pdf, 1.0),
            pages as f64 / (pdf.len() + 1) as f64,
            bytes as f64 / 1024.0 / (pdf.len() + 1) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

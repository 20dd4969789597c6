//! `bench alerts`: the cost of the drug master and the alert classification, and what the
//! classification computed once at load saves each summary. A benchmark, not a test.

use anyhow::Result;
use myna_domain::alerts::AlertTable;
use myna_domain::summary::{View, build_summary};
use myna_drug_master::Master;
use myna_synth::Generator;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct AlertsBenchArgs {
    /// Times the master is loaded and classified from scratch.
    #[arg(long, default_value_t = 10)]
    pub loads: usize,
    /// Synthetic persons whose summaries are built (seed 2026, as the demo).
    #[arg(long, default_value_t = 2000)]
    pub persons: u64,
    /// Summaries built per person and table, to steady the timing.
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
}

/// p50, p95 and max in ms.
fn quantiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| crate::quantile::nearest_rank(&samples, q).as_secs_f64() * 1e3;
    (at(0.5), at(0.95), at(1.0))
}

pub fn run(args: AlertsBenchArgs) -> Result<ExitCode> {
    let mut load = Vec::new();
    let mut classify = Vec::new();
    let mut codes = 0;
    for _ in 0..args.loads.max(1) {
        let t = Instant::now();
        let master = Master::shipped()?;
        load.push(t.elapsed());
        let t = Instant::now();
        let mut table = AlertTable::builtin()?;
        table.classify_codes(master.yj_codes());
        classify.push(t.elapsed());
        codes = table.classified_codes();
    }
    let (p50, p95, max) = quantiles(load);
    println!(
        "master load (unzip, cp932, 23 deltas): p50 {p50:.1} ms  p95 {p95:.1} ms  max {max:.1} ms"
    );
    let (p50, p95, max) = quantiles(classify);
    println!(
        "classify {codes} codes (table + every code): p50 {p50:.1} ms  p95 {p95:.1} ms  max {max:.1} ms"
    );

    let rules = AlertTable::builtin()?;
    let mut indexed = AlertTable::builtin()?;
    indexed.classify_codes(Master::shared()?.yj_codes());
    let today = chrono::Utc::now().date_naive();
    let generator = Generator::new(2026, today)?;
    let persons: Vec<_> = (0..args.persons).map(|i| generator.person(i)).collect();
    let dispensings: usize = persons.iter().map(|p| p.records.dispensings.len()).sum();
    let time = |table: &AlertTable| -> Duration {
        let t = Instant::now();
        let mut alerts = 0usize;
        for _ in 0..args.repeat.max(1) {
            for p in &persons {
                let s = build_summary(&p.person, &p.records, View::Summary, today, None, table);
                alerts += s.alerts.len();
            }
        }
        std::hint::black_box(alerts);
        t.elapsed() / u32::try_from(args.repeat.max(1)).unwrap_or(1)
    };
    // Warm both, then measure alternately.
    time(&rules);
    time(&indexed);
    let mut by_rules = Vec::new();
    let mut by_lookup = Vec::new();
    for _ in 0..5 {
        by_rules.push(time(&rules));
        by_lookup.push(time(&indexed));
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / args.persons.max(1) as f64;
    let (r, _, _) = quantiles(by_rules);
    let (l, _, _) = quantiles(by_lookup);
    println!(
        "build_summary over {} persons ({} dispensings in their 5 years):",
        args.persons, dispensings
    );
    println!(
        "  rules evaluated per drug (baseline): {:.1} µs per summary",
        per(Duration::from_secs_f64(r / 1e3))
    );
    println!(
        "  classes looked up (computed at load): {:.1} µs per summary  (ratio {:.2})",
        per(Duration::from_secs_f64(l / 1e3)),
        if r > 0.0 { l / r } else { 0.0 }
    );
    Ok(ExitCode::SUCCESS)
}

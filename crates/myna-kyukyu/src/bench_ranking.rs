//! `bench ranking`: ranking every hospital of the registry for one patient, against the
//! issue's bound of 5 ms. A benchmark, not a test.

use anyhow::Result;
use chrono::Utc;
use myna_domain::hospitals::{
    Criteria, GeoPoint, HospitalStatus, Kakaritsuke, RankRequest, Registry, rank,
};
use myna_domain::incident::ComplaintCategory;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct RankingBenchArgs {
    /// Rankings to time.
    #[arg(long, default_value_t = 100_000)]
    pub runs: usize,
}

pub fn run(args: RankingBenchArgs) -> Result<ExitCode> {
    let registry = Registry::kawasaki()?;
    let criteria = Criteria::builtin()?;
    let now = Utc::now();
    let statuses: HashMap<String, HospitalStatus> = registry
        .hospitals()
        .iter()
        .map(|h| (h.id.clone(), HospitalStatus::accepting_everything(h, now)))
        .collect();
    let alerts = vec!["doac".to_owned(), "dialysis".to_owned()];
    let kakaritsuke = vec![Kakaritsuke {
        institution_code: registry.hospitals()[4].institution_code.clone(),
        last_visit: now.date_naive(),
        visits: 4,
    }];
    let declined = vec![registry.hospitals()[0].id.clone()];
    let mut samples = Vec::with_capacity(args.runs);
    for i in 0..args.runs.max(1) {
        let category = ComplaintCategory::ALL[i % ComplaintCategory::ALL.len()];
        // Positions spread over the city.
        let from = GeoPoint {
            lat: 35.52 + (i % 13) as f64 * 0.008,
            lon: 139.50 + (i % 17) as f64 * 0.012,
        };
        let t = Instant::now();
        let r = rank(
            &registry,
            &criteria,
            &RankRequest {
                from,
                category,
                alert_classes: &alerts,
                kakaritsuke: &kakaritsuke,
                declined: &declined,
                statuses: &statuses,
                now,
            },
        );
        samples.push(t.elapsed());
        std::hint::black_box(r);
    }
    samples.sort();
    let at = |q: f64| crate::quantile::nearest_rank(&samples, q).as_secs_f64() * 1e6;
    println!(
        "rank {} hospitals, {} runs: p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs  (bound 5,000 µs)",
        registry.hospitals().len(),
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(ExitCode::SUCCESS)
}

//! `simulate`: a bureau's synthetic year of incidents (`myna_synth::year`), written through
//! the ems store (`EmsStore::load_incidents`: every event checked by the append rules, a week
//! per transaction), to fill the statistics dashboard.

use crate::store::{DbTarget, EmsDb};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use myna_ems::seed::{DISPATCHER_LOGIN, KAWASAKI_CODE, KAWASAKI_TEAMS, crew_login};
use myna_store::ems::{EmsStore, NewEvent, PastIncident};
use myna_synth::year::{SimBureau, SimIncident, SimTeam, YearSim, published_year};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Days per transaction: about 1,750 incidents.
const DAYS_PER_BATCH: usize = 7;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The bureau whose published year is simulated: `kawasaki` (川崎市消防局, seeded by
    /// `ems seed-kawasaki` or the demo).
    #[arg(long)]
    pub bureau: String,
    /// The year, one the bureau published (Kawasaki: 2022–2025).
    #[arg(long)]
    pub year: i32,
    /// The ems database holding the bureau.
    #[arg(long, default_value = "data/ems.db")]
    pub db: DbTarget,
    /// Seed; the same seed gives the same year.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Write only the first N days of the year (a shorter run for tests).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=366))]
    pub days: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub async fn run(args: SimulateArgs) -> Result<ExitCode> {
    let published = published_year(&args.bureau, args.year)?;
    let code = match args.bureau.as_str() {
        "kawasaki" | "kawasaki-fd" => KAWASAKI_CODE,
        other => bail!("unknown bureau {other:?}"),
    };
    let store = EmsDb::open_existing(&args.db).await?;
    let bureau = store.bureau(code).await?.with_context(|| {
        format!(
            "{} holds no bureau {code}; seed it first (`myna-kyukyu ems seed-kawasaki --db {}`, or \
             run the demo)",
            args.db, args.db
        )
    })?;
    let (from_ms, to_ms) = year_range_ms(args.year)?;
    let already = store.incident_facts(bureau.id, from_ms, to_ms).await?.len();
    if already > 0 {
        bail!(
            "{code} already has {already} incidents in {}; a year is simulated once (use a new \
             ems database)",
            args.year
        );
    }
    let sim = YearSim::new(args.seed, published, sim_bureau(&store, &bureau).await?)?;
    let days = args
        .days
        .map_or(sim.days(), |d| usize::try_from(d).unwrap_or(usize::MAX))
        .min(sim.days());
    let total: u64 = (0..days).map(|d| u64::from(sim.calls_on(d))).sum();
    let bar = progress_bar(!args.quiet, total, &format!("{code} {}", args.year));
    eprintln!(
        "simulate: writing synthetic incidents and view-log entries into {}; they cannot be \
         removed from the hash-chained view log. Use a demo or test database only.",
        args.db
    );
    let started = Instant::now();
    let (written, views) = write_days(&store, bureau.id, &sim, days, &bar).await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{code} {}: {written} incidents ({} published), {views} summary views, in {seconds:.1} s \
         ({:.0} incidents/s). The statistics are at /stats on the ems desk.",
        args.year,
        published.dispatches,
        written as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the first `days` days of `sim` into the bureau, a week per transaction; answers the
/// incidents and the summary views written.
pub async fn write_days<S: EmsStore>(
    store: &S,
    bureau: myna_store::ems::BureauId,
    sim: &YearSim,
    days: usize,
    bar: &ProgressBar,
) -> Result<(u64, u64)> {
    let year = sim.published().year;
    let mut written = 0u64;
    let mut views = 0u64;
    for first in (0..days).step_by(DAYS_PER_BATCH) {
        let batch: Vec<PastIncident> = (first..(first + DAYS_PER_BATCH).min(days))
            .flat_map(|d| sim.day(d))
            .enumerate()
            .map(|(i, incident)| past_incident(year, first, i, incident))
            .collect();
        let n = batch.len() as u64;
        views += batch.iter().map(|p| p.views.len() as u64).sum::<u64>();
        store
            .load_incidents(bureau, batch)
            .await
            .with_context(|| format!("writing the week from day {}", first + 1))?;
        written += n;
        bar.inc(n);
    }
    Ok((written, views))
}

/// The bureau's teams with the crew account of each (the seed's `crewNN`, in station order),
/// its dispatcher, and the registry's hospitals.
pub async fn sim_bureau<S: EmsStore>(
    store: &S,
    bureau: &myna_store::ems::Bureau,
) -> Result<SimBureau> {
    let teams = store.teams(bureau.id).await?;
    let dispatcher = store
        .account(bureau.id, DISPATCHER_LOGIN)
        .await?
        .with_context(|| format!("{} has no account {DISPATCHER_LOGIN}", bureau.code))?;
    let mut sim_teams = Vec::new();
    let names = KAWASAKI_TEAMS
        .iter()
        .flat_map(|(_, t)| t.iter())
        .enumerate();
    for (i, name) in names {
        let login = crew_login(i + 1);
        let team = teams
            .iter()
            .find(|t| t.name == *name)
            .with_context(|| format!("{} has no team {name}", bureau.code))?;
        let account = store
            .account(bureau.id, &login)
            .await?
            .filter(|a| a.team_id == Some(team.id))
            .with_context(|| format!("{} has no crew account {login} of {name}", bureau.code))?;
        sim_teams.push(SimTeam {
            id: team.id,
            station: team.station.clone(),
            name: team.name.clone(),
            crew_account: account.id,
            crew_login: login,
        });
    }
    let hospitals = myna_domain::hospitals::Registry::shared()?
        .hospitals()
        .iter()
        .map(|h| (h.id.clone(), h.ward.clone()))
        .collect();
    Ok(SimBureau {
        code: bureau.code.clone(),
        secret: bureau.patient_secret.clone(),
        dispatcher_account: dispatcher.id,
        teams: sim_teams,
        hospitals,
    })
}

/// A simulated incident as the store takes it: crew events carry their team's guard, and
/// every event an idempotency key unique within the year.
fn past_incident(year: i32, first_day: usize, index: usize, sim: SimIncident) -> PastIncident {
    let events = sim
        .events
        .into_iter()
        .enumerate()
        .map(|(seq, e)| {
            let team_guard = e.actor.team();
            (
                NewEvent {
                    kind: e.kind,
                    actor: e.actor,
                    idempotency_key: format!("sim-{year}-{first_day}-{index}-{seq}"),
                    device_at_ms: None,
                    team_guard,
                },
                e.at_ms,
            )
        })
        .collect();
    PastIncident {
        events,
        views: sim.views,
    }
}

/// The year's range in Japan (`myna_domain::stats::year_range_ms`), or why not.
pub fn year_range_ms(year: i32) -> Result<(i64, i64)> {
    myna_domain::stats::year_range_ms(year)
        .with_context(|| format!("{year} is outside the years the statistics cover (2000–2100)"))
}

pub fn progress_bar(shown: bool, total: u64, name: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} {wide_bar} {pos}/{len} 件 {per_sec} ETA {eta}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

//! `myna-kyukyu`: the command line of every Myna Kyukyu role.

mod audit;
mod bench;
mod bench_alerts;
mod bench_card;
mod bench_ems_load;
mod bench_handoff;
mod bench_import;
mod bench_ranking;
mod bench_stats;
mod card_cli;
mod cards;
mod checkpoint;
mod delay_proxy;
mod demo;
mod ems_cli;
mod enroll;
mod generate;
mod import;
mod portal;
mod profile_file;
mod provider;
mod quantile;
mod render;
mod secret_file;
mod simulate;
mod store;
mod tls;

use clap::{Parser, Subcommand};

// The provider allocates many small strings per request; mimalloc handles that with less
// contention and fragmentation than glibc's allocator on a busy 2-core server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "myna-kyukyu",
    version,
    about = "マイナ救急: emergency summaries for ambulance crews"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic population into a provider database (or a claims-import file).
    Gen(generate::GenArgs),
    /// Import claims batches (docs/import-format.md) into a provider database: each batch in
    /// one transaction, a batch imported before skipped, a bad line reported with its number.
    Import(import::ImportArgs),
    /// A bureau's synthetic year of incidents into its ems database (for the statistics).
    Simulate(simulate::SimulateArgs),
    /// The national emergency-summary service.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
    /// Test JPKI CA and card certificates.
    #[command(subcommand)]
    Ca(cards::CaCommand),
    /// Card decks, the card reader (PC/SC) and the card emulator.
    #[command(subcommand)]
    Card(cards::CardCommand),
    /// The fire bureau's service (ems) and its admin commands.
    #[command(subcommand)]
    Ems(ems_cli::EmsCommand),
    /// The ambulance tablet: serves the crew UI and reads cards.
    Terminal(ems_cli::TerminalArgs),
    /// The ambulance tablet's enrollment: make its key, ask ems for a client certificate, and
    /// wait for an admin's approval.
    Enroll(ems_cli::EnrollArgs),
    /// The patient portal (閲覧履歴): on the patient's own computer, sign in with the card and
    /// its auth PIN and see who viewed their medical information.
    Portal(portal::PortalArgs),
    /// Audit-log tools.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// TLS: the development CA and the certificates it issues.
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// Run the demo: provider, ems and terminal in one process on SQLite, with synthetic data
    /// and an emulated card reader.
    Demo(demo::DemoArgs),
    /// Benchmarks (not tests): measure and report.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print a service's OpenAPI document (JSON) on stdout.
    Openapi {
        #[arg(value_enum)]
        api: OpenapiDoc,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OpenapiDoc {
    /// The provider API (docs/openapi/provider.json).
    Provider,
    /// ems's terminal API (docs/openapi/ems-terminal.json).
    Ems,
}

fn print_openapi(api: OpenapiDoc) -> anyhow::Result<ExitCode> {
    let json = match api {
        OpenapiDoc::Provider => myna_provider::openapi::json(),
        OpenapiDoc::Ems => myna_ems::openapi::json(),
    }
    .map_err(|e| anyhow::anyhow!("writing the OpenAPI document: {e}"))?;
    print!("{json}");
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The server's notices (e.g. "relation … already exists, skipping" at every
            // start) are tokio-postgres's info lines: not the operator's news.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,refinery_core=warn,tokio_postgres=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Gen(a) => generate::run(a).await,
            Command::Import(a) => import::run(a).await,
            Command::Simulate(a) => simulate::run(a).await,
            Command::Provider(c) => provider::run(c).await,
            Command::Ca(c) => cards::run_ca(c).await,
            Command::Card(c) => cards::run_card(c).await,
            Command::Audit(c) => audit::run(c).await,
            Command::Portal(a) => portal::run(a).await,
            Command::Tls(c) => tls::run(c),
            Command::Ems(c) => ems_cli::run(c).await,
            Command::Terminal(a) => ems_cli::run_terminal(a).await,
            Command::Enroll(a) => enroll::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Bench(c) => bench::run(c).await,
            Command::Openapi { api } => print_openapi(api),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

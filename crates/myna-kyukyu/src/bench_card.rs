//! `bench card`: "card placed → auth certificate verified", counted in APDUs and bytes and
//! timed in process, through a real pcscd + vsmartcard-vpcd on loopback, and with an emulated
//! per-command latency (25 ms stands for contactless Type B).
//!
//! Baseline: `myna-card`'s own `JpkiAp::read_auth_certificate_der`, the well-kept library's
//! default path (SELECT DF, SELECT EF, then 256-byte READ BINARY chunks).

use anyhow::{Context, Result, bail};
use myna_card::ap::jpki::JpkiAp;
use myna_card_emu::card::Card;
use myna_card_emu::profile::CardProfile;
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_card_emu::testing::test_card;
use myna_pki::TrustAnchor;
use myna_reader::metered::Metered;
use myna_reader::trust::{Trust, check};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const READER: &str = "Virtual PCD 00 00";

#[derive(clap::Args)]
pub struct CardBenchArgs {
    /// Reads per scenario.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Emulated latency per command for the contactless scenarios, in milliseconds.
    #[arg(long, default_value_t = 25)]
    pub latency_ms: u64,
    /// The vsmartcard-vpcd driver of a running pcscd (`scripts/pcscd-vpcd start`).
    #[arg(long, default_value = "127.0.0.1:35963")]
    pub vpcd: String,
    /// Skip the pcscd scenarios.
    #[arg(long)]
    pub in_process_only: bool,
}

struct Sample {
    apdus: u32,
    bytes: usize,
    micros: u64,
}

struct Row {
    name: String,
    samples: Vec<Sample>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    crate::quantile::nearest_rank(sorted, p) as f64 / 1000.0
}

impl Row {
    fn print(&self) {
        let mut t: Vec<u64> = self.samples.iter().map(|s| s.micros).collect();
        t.sort_unstable();
        let first = self.samples.first();
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            self.name,
            first.map_or(0, |s| s.apdus),
            first.map_or(0, |s| s.bytes),
            pct(&t, 0.5),
            pct(&t, 0.95),
            pct(&t, 1.0),
        );
    }
    fn p50(&self) -> f64 {
        let mut t: Vec<u64> = self.samples.iter().map(|s| s.micros).collect();
        t.sort_unstable();
        pct(&t, 0.5)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Ours: SELECT, token label, one extended READ BINARY by short EF id; then the chain check.
fn ours_once(reader: &mut EmulatedReader, trust: &Trust) -> Result<Sample> {
    let start = Instant::now();
    let read = myna_reader::read_auth_certificate(reader)?;
    let report = check(&read.der, trust, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
    if !report.chain_verified {
        bail!("chain not verified: {:?}", report.chain_error);
    }
    Ok(Sample {
        apdus: read.apdus(),
        bytes: read.bytes(),
        micros: micros(start.elapsed()),
    })
}

/// Baseline: myna-card's default read of EF 000A, then the same chain check.
fn baseline_once<T: myna_card::Transmit>(transport: T, trust: &Trust) -> Result<Sample> {
    let start = Instant::now();
    let mut card = myna_card::Card::new(Metered::new(transport));
    let der = JpkiAp::select(&mut card)?.read_auth_certificate_der()?;
    let report = check(&der, trust, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
    if !report.chain_verified {
        bail!("chain not verified: {:?}", report.chain_error);
    }
    let m = card.transport();
    Ok(Sample {
        apdus: m.apdus,
        bytes: m.sent + m.received,
        micros: micros(start.elapsed()),
    })
}

/// How the emulated latency is charged.
#[derive(Clone, Copy)]
struct Latency {
    per: Duration,
    frame_bytes: Option<usize>,
}

const NONE: Latency = Latency {
    per: Duration::ZERO,
    frame_bytes: None,
};

fn emulated(profile: &CardProfile, latency: Latency) -> Result<EmulatedReader> {
    Ok(EmulatedReader::new(
        Card::new(profile)?,
        Faults {
            latency: latency.per,
            frame_bytes: latency.frame_bytes,
            ..Faults::default()
        },
    ))
}

fn in_process(
    name: &str,
    runs: usize,
    profile: &CardProfile,
    latency: Latency,
    trust: &Trust,
    baseline: bool,
) -> Result<Row> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut reader = emulated(profile, latency)?;
        samples.push(if baseline {
            baseline_once(&mut reader, trust)?
        } else {
            ours_once(&mut reader, trust)?
        });
    }
    Ok(Row {
        name: name.into(),
        samples,
    })
}

/// Waits until the virtual reader's card is present or absent.
fn wait_presence(present: bool) -> Result<()> {
    let ctx = ::pcsc::Context::establish(::pcsc::Scope::User)?;
    let mut states = [::pcsc::ReaderState::new(
        std::ffi::CString::new(READER)?,
        ::pcsc::State::UNAWARE,
    )];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ctx.get_status_change(Duration::from_millis(200), &mut states) {
            Ok(()) | Err(::pcsc::Error::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        let st = states[0].event_state();
        if st.contains(::pcsc::State::PRESENT) == present {
            return Ok(());
        }
        states[0].sync_current_state();
        if Instant::now() > deadline {
            bail!("the virtual reader never became {present}");
        }
    }
}

/// Through pcscd: the emulator (a thread here, speaking vpcd) joins the virtual reader; the
/// reader module waits for the presence event, connects and reads. Reports the read + verify
/// time and, separately, the time from insertion to the presence event.
fn through_pcscd(
    name: &str,
    args: &CardBenchArgs,
    profile: &CardProfile,
    latency: Latency,
    trust: &Trust,
    baseline: bool,
) -> Result<(Row, Row)> {
    let mut read_samples = Vec::new();
    let mut detect_samples = Vec::new();
    for _ in 0..args.runs {
        let mut reader = emulated(profile, latency)?;
        let stream = TcpStream::connect(&args.vpcd)
            .with_context(|| format!("connecting to vpcd at {}", args.vpcd))?;
        let control = stream.try_clone()?;
        let inserted = Instant::now();
        let card_side =
            std::thread::spawn(move || myna_card_emu::vpcd::serve_connection(stream, &mut reader));
        let found = myna_reader::pcsc::wait_for_card(Some(READER), Duration::from_secs(10))?;
        let detected = inserted.elapsed();
        let mut transport = myna_reader::pcsc::connect(&found)?;
        let sample = if baseline {
            baseline_once(&mut transport, trust)?
        } else {
            let start = Instant::now();
            let read = myna_reader::read_auth_certificate(&mut transport)?;
            let report = check(&read.der, trust, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
            if !report.chain_verified {
                bail!("chain not verified");
            }
            Sample {
                apdus: read.apdus(),
                bytes: read.bytes(),
                micros: micros(start.elapsed()),
            }
        };
        drop(transport);
        detect_samples.push(Sample {
            apdus: 0,
            bytes: 0,
            micros: micros(detected),
        });
        read_samples.push(sample);
        control.shutdown(Shutdown::Both)?;
        let _ = card_side.join();
        wait_presence(false)?;
    }
    Ok((
        Row {
            name: name.into(),
            samples: read_samples,
        },
        Row {
            name: format!("{name}: insertion → presence event"),
            samples: detect_samples,
        },
    ))
}

pub fn run(args: CardBenchArgs) -> Result<ExitCode> {
    let t = test_card("01BE4C000001")?;
    let trust = Trust::TestRoot(Box::new(TrustAnchor::from_der(&t.ca_cert)?));
    let l = args.latency_ms;
    let per_command = Latency {
        per: Duration::from_millis(l),
        frame_bytes: None,
    };
    let per_frame = Latency {
        per: Duration::from_millis(l),
        frame_bytes: Some(256),
    };
    let scenarios = [
        ("in process".to_owned(), NONE, false),
        (format!("in process, {l} ms/command"), per_command, false),
        (
            format!("in process, {l} ms per 256-byte frame"),
            per_frame,
            false,
        ),
        ("pcscd + vpcd".to_owned(), NONE, true),
        (format!("pcscd + vpcd, {l} ms/command"), per_command, true),
    ];
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for (name, latency, pcscd) in scenarios {
        if pcscd && args.in_process_only {
            continue;
        }
        let mut pair = Vec::new();
        for baseline in [false, true] {
            let label = format!("{name}: {}", if baseline { "baseline" } else { "ours" });
            if pcscd {
                let (read, detect) =
                    through_pcscd(&label, &args, &t.profile, latency, &trust, baseline)?;
                pair.push(read.p50());
                rows.push(read);
                if !baseline && latency.per.is_zero() {
                    rows.push(detect);
                }
            } else {
                let row = in_process(&label, args.runs, &t.profile, latency, &trust, baseline)?;
                pair.push(row.p50());
                rows.push(row);
            }
        }
        if let [ours, base] = pair[..] {
            ratios.push((name, ours / base.max(f64::MIN_POSITIVE)));
        }
    }
    println!(
        "auth certificate: {} bytes; {} runs per row",
        t.auth_cert.len(),
        args.runs
    );
    println!();
    println!("| scenario | APDUs | bytes | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        r.print();
    }
    println!();
    println!("| scenario | ours / baseline (p50) |");
    println!("|---|---|");
    for (name, ratio) in ratios {
        println!("| {name} | {ratio:.2} |");
    }
    Ok(ExitCode::SUCCESS)
}

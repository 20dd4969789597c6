//! `card readers`, `card read`, `card status` (the terminal's card module on PC/SC) and
//! `card emulate` (the emulated card on a real pcscd through vsmartcard-vpcd).

use crate::profile_file::ProfileFile;
use anyhow::{Context, Result};
use myna_card_emu::card::{Card, JPKI_AID};
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_card_emu::vpcd::{self, End};
use myna_pki::TrustAnchor;
use myna_reader::trust::{Trust, check};
use myna_reader::{ReadFailure, pcsc};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ReadArgs {
    /// PC/SC reader name (default: the first reader with a card).
    #[arg(long)]
    reader: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Verify the chain to this test root (DER) instead of the J-LIS roots.
    #[arg(long)]
    test_root: Option<PathBuf>,
    /// Seconds to wait for a card to be placed.
    #[arg(long, default_value_t = 10)]
    wait: u64,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long)]
    reader: Option<String>,
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 10)]
    wait: u64,
}

#[derive(clap::Args)]
pub struct EmulateArgs {
    /// The vsmartcard-vpcd driver of a running pcscd.
    #[arg(long, default_value = "127.0.0.1:35963")]
    vpcd: String,
    /// Card profile written by `card deck` (`data/cards/<id>.profile.json`).
    #[arg(long)]
    profile: PathBuf,
    /// Latency added to every command, in milliseconds (25 stands for contactless Type B).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Charge the latency per started frame of this many response bytes (e.g. 256), as a
    /// contactless reader chains long responses, instead of once per command.
    #[arg(long)]
    frame_bytes: Option<usize>,
    /// The card leaves the reader after answering this many commands.
    #[arg(long)]
    remove_after: Option<u32>,
    /// The card stops answering after this many commands.
    #[arg(long)]
    mute_after: Option<u32>,
    /// Present the JPKI application as deactivated.
    #[arg(long)]
    jpki_blocked: bool,
    /// Override the token label, e.g. JPKIAPGPSETOKEN for an Android smartphone token.
    #[arg(long)]
    token: Option<String>,
    /// Seconds to keep retrying the connection while pcscd starts.
    #[arg(long, default_value_t = 10)]
    connect_wait: u64,
}

fn fail(failure: &ReadFailure, json: bool) -> ExitCode {
    let ja = failure.message_ja();
    if json {
        let out = serde_json::json!({
            "ok": false,
            "failure": failure,
            "message_ja": ja,
            "message_en": failure.message_en(),
        });
        println!("{out}");
    } else {
        eprintln!("{}。{}", ja.what, ja.next);
        eprintln!("({failure})");
    }
    ExitCode::from(2)
}

/// How long the card may take to answer a whole read before the crew is told it is mute.
const CARD_IO_DEADLINE: Duration = Duration::from_secs(5);

pub fn readers() -> Result<ExitCode> {
    match pcsc::readers() {
        Ok(names) if names.is_empty() => Ok(fail(&ReadFailure::NoReader, false)),
        Ok(names) => {
            for n in names {
                println!("{n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => Ok(fail(&f, false)),
    }
}

pub fn read(args: ReadArgs) -> Result<ExitCode> {
    let trust = match &args.test_root {
        Some(path) => {
            let der = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Trust::TestRoot(Box::new(TrustAnchor::from_der(&der)?))
        }
        None => Trust::Jlis,
    };
    let outcome = pcsc::wait_for_card(args.reader.as_deref(), Duration::from_secs(args.wait))
        .and_then(|reader| {
            pcsc::with_card(&reader, CARD_IO_DEADLINE, |t| {
                myna_reader::read_auth_certificate(t)
            })
            .map(|read| (reader, read))
        });
    let (reader, read) = match outcome {
        Ok(r) => r,
        Err(f) => return Ok(fail(&f, args.json)),
    };
    let report = check(&read.der, &trust, chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("the card returned {e}"))?;
    if args.json {
        let out = serde_json::json!({
            "ok": true,
            "reader": reader,
            "certificate": report,
            "read": read,
            "apdus": read.apdus(),
            "bytes": read.bytes(),
            "micros": read.micros(),
        });
        println!("{out}");
    } else {
        println!("reader    {reader}");
        println!("token     {}", read.token);
        println!("serial    {}", report.serial);
        println!("issuer    {}", report.issuer);
        println!("subject   {}", report.subject);
        println!("validity  {} .. {}", report.not_before, report.not_after);
        match &report.chain_error {
            None => println!("chain     verified to the {}", report.anchor),
            Some(e) => println!("chain     NOT verified to the {}: {e}", report.anchor),
        }
        println!(
            "read      {} APDUs, {} bytes, {:.1} ms{}",
            read.apdus(),
            read.bytes(),
            read.micros() as f64 / 1000.0,
            if read.extended {
                " (extended READ BINARY)"
            } else {
                " (256-byte chunks)"
            }
        );
        for s in &read.steps {
            println!(
                "  {:<17} {} APDU  {:>5} bytes  {:>8.1} ms",
                s.name,
                s.apdus,
                s.bytes_sent + s.bytes_received,
                s.micros as f64 / 1000.0
            );
        }
    }
    Ok(if report.chain_verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let outcome = pcsc::wait_for_card(args.reader.as_deref(), Duration::from_secs(args.wait))
        .and_then(|reader| {
            pcsc::with_card(&reader, CARD_IO_DEADLINE, myna_reader::pin_status)
                .map(|status| (reader, status))
        });
    let (reader, status) = match outcome {
        Ok(r) => r,
        Err(f) => return Ok(fail(&f, args.json)),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "ok": true, "reader": reader, "pins": status })
        );
    } else {
        let show = |t: myna_reader::read::Tries| match t {
            myna_reader::read::Tries::Remaining(n) => format!("{n} tries left"),
            myna_reader::read::Tries::Blocked => "BLOCKED".into(),
            myna_reader::read::Tries::Unlimited => "no retry limit".into(),
            myna_reader::read::Tries::NotReported => "not reported".into(),
        };
        println!("reader                          {reader}");
        println!(
            "利用者証明用暗証番号 (auth PIN)   {}",
            show(status.auth_pin)
        );
        println!(
            "署名用パスワード (sign password)   {}",
            show(status.sign_password)
        );
        println!(
            "券面事項入力補助用暗証番号 (text)  {}",
            show(status.text_pin)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn emulate(args: EmulateArgs) -> Result<ExitCode> {
    let mut file = ProfileFile::load(&args.profile)?;
    if let Some(t) = &args.token {
        file.token = t.clone();
    }
    let mut card = Card::new(&file.to_profile()?)?;
    if args.jpki_blocked {
        card.set_deactivated(&JPKI_AID, true);
    }
    let faults = Faults {
        latency: Duration::from_millis(args.latency_ms),
        frame_bytes: args.frame_bytes,
        remove_after: args.remove_after,
        mute_after: args.mute_after,
    };
    let mut reader = EmulatedReader::new(card, faults);
    let deadline = std::time::Instant::now() + Duration::from_secs(args.connect_wait);
    let stream = loop {
        match std::net::TcpStream::connect(&args.vpcd) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!("vpcd at {} not ready: {e}", args.vpcd);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "connecting to vsmartcard-vpcd at {} (is pcscd running? scripts/pcscd-vpcd start)",
                        args.vpcd
                    )
                });
            }
        }
    };
    eprintln!(
        "card {} inserted in the virtual reader at {}",
        file.id, args.vpcd
    );
    let end = vpcd::serve_connection(stream, &mut reader)?;
    match end {
        End::CardRemoved => eprintln!("card removed after {} commands", reader.answered()),
        End::DriverClosed => eprintln!("the vpcd driver closed the connection"),
    }
    Ok(ExitCode::SUCCESS)
}

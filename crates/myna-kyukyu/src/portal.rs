//! `portal`: the patient portal (閲覧履歴) on the patient's own computer.

use anyhow::{Context, Result};
use clap::Args;
use myna_portal::{CardSource, Portal, PortalClient};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct PortalArgs {
    /// Base URL of the national provider.
    #[arg(long)]
    pub provider: String,
    /// The CA certificate(s) to trust for an `https://` provider (default: the platform's).
    #[arg(long)]
    pub provider_ca: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8447")]
    pub listen: SocketAddr,
    /// PC/SC reader name (default: the first reader with a card).
    #[arg(long)]
    pub reader: Option<String>,
    /// Instead of a reader: an emulated card from this profile (`card deck` writes them).
    #[arg(long, conflicts_with = "reader")]
    pub emulate_profile: Option<PathBuf>,
    /// Also write the one-time launch URL to this file (mode 0600).
    #[arg(long)]
    pub launch_file: Option<PathBuf>,
}

/// The card source a profile names, or PC/SC.
pub fn card_source(args: &PortalArgs) -> Result<CardSource> {
    Ok(match &args.emulate_profile {
        Some(path) => {
            let profile = crate::profile_file::ProfileFile::load(path)?.to_profile()?;
            CardSource::Emulated(Arc::new(Mutex::new(myna_card_emu::card::Card::new(
                &profile,
            )?)))
        }
        None => CardSource::Pcsc {
            reader: args.reader.clone(),
        },
    })
}

pub async fn serve(
    args: PortalArgs,
    card: CardSource,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // The portal sends a PIN to the card: only this machine's own browser window may reach it.
    myna_web::own_window::Guard::check_listen(args.listen)?;
    let provider = PortalClient::new(
        &args.provider,
        crate::tls::client_roots(args.provider_ca.as_deref())?,
    )?;
    let portal = Arc::new(Portal::new(card, provider));
    serve_own_window(
        args.listen,
        myna_portal::WINDOW_COOKIE,
        "portal: open {launch} in this computer's browser (once; it sets the window's key)",
        args.launch_file.as_deref(),
        |guard| myna_portal::router(portal, guard),
        shutdown,
    )
    .await
    .context("portal server")
}

/// Serves a UI for this machine's own browser window (`myna_web::own_window`) on `listen`:
/// prints `announce` with `{launch}` replaced by the one-time launch URL, and writes the URL
/// to `launch_file` too.
pub async fn serve_own_window(
    listen: SocketAddr,
    cookie: &'static str,
    announce: &str,
    launch_file: Option<&std::path::Path>,
    router: impl FnOnce(Arc<myna_web::own_window::Guard>) -> axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let guard = Arc::new(myna_web::own_window::Guard::new(
        listener.local_addr()?,
        cookie,
    )?);
    let launch = guard
        .launch_url()
        .context("the launch URL was made just now")?;
    println!("{}", announce.replace("{launch}", &launch));
    if let Some(path) = launch_file {
        crate::provider::write_token(path, &launch)?;
    }
    myna_web::serve::serve(listener, router(guard), Default::default(), None, shutdown)
        .await
        .map_err(Into::into)
}

pub async fn run(args: PortalArgs) -> Result<ExitCode> {
    let card = card_source(&args)?;
    serve(args, card, crate::provider::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

//! `brigade serve`: builds the app and serves until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context as _;
use brigade_core::settings::Settings;
use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (overrides server.addr); port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<SocketAddr>,
}

pub(crate) async fn run(mut settings: Settings, args: &ServeArgs) -> Result<(), Failure> {
    if let Some(addr) = args.addr {
        settings.server.addr = addr;
    }
    let app = match brigade_api::App::build(settings).await {
        Ok(app) => app,
        Err(brigade_api::AppError::Pipeline(e)) => return Err(Failure::Usage(e.to_string())),
        Err(brigade_api::AppError::Search(e @ brigade_search::SearchError::Embed { .. })) => {
            return Err(Failure::Usage(e.to_string()));
        }
        Err(e) => {
            return Err(Failure::Runtime(
                anyhow::Error::new(e).context("starting the server"),
            ));
        }
    };
    tracing::info!(address = %app.local_addr(), "Listening.");
    app.run_until(shutdown_signal()).await.context("serving")?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("Shutting down: no new connections, draining in-flight requests.");
}

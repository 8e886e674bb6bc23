//! `brigade jwt rotate`: replace the signing key of access tokens without logging anyone out.

use anyhow::Context;
use brigade_core::settings::Settings;
use brigade_store::Store;
use clap::Subcommand;

use super::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum JwtCommand {
    /// Generate a new signing key; tokens signed with the old one stay valid until they expire.
    #[command(
        after_help = "Example:\n  brigade jwt rotate --dir myapp   # running servers switch within a second\n\n\
When the secret comes from the environment (auth.jwt_secret_env), rotate there instead: move the\n\
old value to BRIGADE_JWT_PREVIOUS_SECRET and set a new BRIGADE_JWT_SECRET (openssl rand -hex 32)."
    )]
    Rotate,
}

pub(crate) async fn run(settings: Settings, cmd: JwtCommand) -> Result<(), Failure> {
    let JwtCommand::Rotate = cmd;
    if settings.auth.jwt_secret.is_some() {
        return Err(Failure::Usage(format!(
            "the JWT secret comes from {}; rotate it there: move the old value to {} and set a new one",
            settings.auth.jwt_secret_env, "BRIGADE_JWT_PREVIOUS_SECRET"
        )));
    }
    let store = Store::open(&settings)
        .await
        .context("opening the database")?;
    brigade_api::rotate_stored_jwt_secret(&store)
        .await
        .context("rotating the key")?;
    store.close().await;
    println!(
        "Rotated the JWT signing key. Running servers sign with it within a second; tokens signed with the old key stay valid until they expire."
    );
    Ok(())
}

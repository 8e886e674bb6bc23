//! `brigade superuser create EMAIL`: an account with role `admin`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, anyhow};
use brigade_auth::{ADMIN_ROLE, Secret, password};
use brigade_core::settings::Settings;
use brigade_store::{Store, StoreError};
use clap::Subcommand;

use super::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum SuperuserCommand {
    /// Create a superuser; the password is read from stdin or prompted for.
    #[command(
        after_help = "Examples:\n  brigade superuser create admin@example.com --dir myapp\n  echo \"$ADMIN_PASSWORD\" | brigade superuser create admin@example.com --password-stdin --dir myapp"
    )]
    Create {
        /// The superuser's email address.
        email: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub(crate) async fn run(settings: Settings, cmd: SuperuserCommand) -> Result<(), Failure> {
    let SuperuserCommand::Create {
        email,
        password_stdin,
    } = cmd;
    let email = email.trim().to_string();
    if !email.contains('@') || email.len() > 254 {
        return Err(Failure::Usage(format!("`{email}` is not an email address")));
    }
    let stdin = std::io::stdin();
    if !password_stdin && stdin.is_terminal() {
        eprint!("Password for {email} (input is visible; prefer --password-stdin): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let pw = Secret::new(line.trim_end_matches(['\r', '\n']));
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| anyhow!(e))?
        .map_err(|e| Failure::Usage(format!("password {e}")))?;
    let store = Store::open(&settings)
        .await
        .context("opening the database")?;
    match store
        .accounts()
        .create_user(
            &email,
            &hash,
            &[ADMIN_ROLE.to_string()],
            &serde_json::Map::new(),
        )
        .await
    {
        Ok(user) => println!("Created superuser {} ({}).", user.email, user.id),
        Err(StoreError::Conflict { .. }) => {
            let existing = store
                .accounts()
                .user_by_email(&email)
                .await
                .context("reading the account")?;
            let Some(user) = existing else {
                return Err(Failure::Runtime(anyhow!(
                    "the account vanished while updating it"
                )));
            };
            if !user.roles.iter().any(|r| r == ADMIN_ROLE) {
                store.close().await;
                return Err(Failure::Runtime(anyhow!(
                    "{email} exists but is not a superuser"
                )));
            }
            store
                .accounts()
                .set_user_password(&user.id, &hash)
                .await
                .context("updating the password")?;
            println!("Updated the password of superuser {}.", user.email);
        }
        Err(e) => {
            return Err(Failure::Runtime(
                anyhow!(e).context("creating the superuser"),
            ));
        }
    }
    store.close().await;
    Ok(())
}

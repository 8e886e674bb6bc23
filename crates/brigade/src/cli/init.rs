//! `brigade init DIR`: scaffolds an app directory with a commented brigade.toml.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Directory to create (or fill, if it exists and has no brigade.toml).
    dir: PathBuf,
}

const SETTINGS: &str = r#"# Brigade settings. Every key can be overridden with BRIGADE_<SECTION>_<KEY>,
# e.g. BRIGADE_DATABASE_URL or BRIGADE_SERVER_ADDR.

[database]
# sqlite://PATH (relative to this directory) or postgres://USER@HOST:PORT/DB
url = "sqlite://data/brigade.db"

[server]
addr = "127.0.0.1:8090"
body_limit = "1MiB"
request_timeout = "30s"

[auth]
access_token_ttl = "15m"
refresh_token_ttl = "30d"
jwt_secret_env = "BRIGADE_JWT_SECRET"   # generated and stored on first start when unset

[log]
format = "human"                        # or "json"
"#;

const DIRS: &[(&str, &str)] = &[
    ("pipelines", "Pipeline files (pipelines/*.toml).\n"),
    ("models", "SQL models for pipelines (models/*.sql).\n"),
    ("docs", "Documents to index for search.\n"),
    (
        "migrations",
        "Schema migrations, one JSON file per change. Commit them; `brigade migrate up` applies them.\n",
    ),
];

pub(crate) fn run(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let settings = dir.join("brigade.toml");
    if settings.exists() {
        bail!(
            "{} already exists; this directory is already a Brigade app",
            settings.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&settings, SETTINGS)
        .with_context(|| format!("writing {}", settings.display()))?;
    for (name, readme) in DIRS {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        std::fs::write(sub.join("README.md"), readme)
            .with_context(|| format!("writing in {}", sub.display()))?;
    }
    std::fs::write(dir.join(".gitignore"), "data/\n").context("writing .gitignore")?;
    println!("Created a Brigade app in {}.", dir.display());
    println!(
        "Next:\n  brigade superuser create admin@example.com --dir {0}\n  brigade serve --dir {0}",
        dir.display()
    );
    Ok(())
}

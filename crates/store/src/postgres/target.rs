//! What a failed connection tried and why it failed, in words an operator can act on: the
//! pool and the driver alone say "error connecting to server" or "db error" and keep the
//! server's own reason ("database \"x\" does not exist") in an error source.

use brigade_core::report::chain;
use tokio_postgres::config::Host;

/// Host(s), port(s), database and role of a connection URL.
#[derive(Debug, Clone)]
pub(super) struct Target {
    hosts: String,
    database: String,
    role: String,
}

impl Target {
    pub(super) fn of(config: &tokio_postgres::Config) -> Target {
        let ports = config.get_ports();
        let port = |n: usize| {
            ports
                .get(n)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432)
        };
        let hosts: Vec<String> = if config.get_hosts().is_empty() {
            // The driver's default, as libpq's.
            vec![format!("localhost:{}", port(0))]
        } else {
            config
                .get_hosts()
                .iter()
                .enumerate()
                .map(|(n, host)| match host {
                    Host::Tcp(name) => format!("{name}:{}", port(n)),
                    Host::Unix(dir) => format!("{} (port {})", dir.display(), port(n)),
                })
                .collect()
        };
        // The driver connects as the OS user when the URL names none.
        let role = config.get_user().map_or_else(
            || std::env::var("USER").unwrap_or_else(|_| "(the OS user)".into()),
            str::to_string,
        );
        Target {
            hosts: hosts.join(", "),
            database: config.get_dbname().unwrap_or(&role).to_string(),
            role,
        }
    }

    /// `cannot connect to PostgreSQL at HOST:PORT (database `D`, role `R`): REASON`.
    pub(super) fn failed(&self, e: &deadpool_postgres::PoolError) -> String {
        let reason = match e {
            // The pool's own words ("Error occurred while creating a new object") add nothing.
            deadpool_postgres::PoolError::Backend(e) => reason(e),
            e => chain(e),
        };
        self.says(&reason)
    }

    /// `cannot connect to PostgreSQL at HOST:PORT (database `D`, role `R`): REASON`.
    pub(super) fn says(&self, reason: &str) -> String {
        format!(
            "cannot connect to PostgreSQL at {} (database `{}`, role `{}`): {reason}",
            self.hosts, self.database, self.role,
        )
    }
}

/// The server's message when it refused us (with its SQLSTATE, detail and hint), else the
/// driver's error with its sources ("Connection refused", "failed to lookup address").
fn reason(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return chain(e);
    };
    let mut text = format!("the server says: {} ({})", db.message(), db.code().code());
    for extra in [db.detail(), db.hint()].into_iter().flatten() {
        text.push_str("; ");
        text.push_str(extra);
    }
    text
}

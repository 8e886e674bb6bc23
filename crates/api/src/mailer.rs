//! Outgoing email. Messages are written as RFC 5322 `.eml` files to the outbox directory
//! (`[mail] outbox`): in development you read them there, in production an SMTP relay or a
//! sidecar delivers them. The log names the file and recipient, never the content, so reset
//! tokens do not reach log lines.

use std::path::PathBuf;

/// Writes messages to the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    from: String,
    outbox: PathBuf,
}

impl Mailer {
    pub(crate) fn new(from: String, outbox: PathBuf) -> Self {
        Mailer { from, outbox }
    }

    /// Queues a plain-text message.
    ///
    /// # Errors
    /// The IO error when the outbox cannot be written.
    pub(crate) async fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
    ) -> std::io::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.outbox).await?;
        let date = chrono::Utc::now().to_rfc2822();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let message = format!(
            "From: {}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@brigade>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            self.from,
            body.replace('\n', "\r\n")
        );
        let path = self.outbox.join(format!("{id}.eml"));
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, message).await?;
        tokio::fs::rename(&tmp, &path).await?;
        tracing::info!(to, path = %path.display(), "Email written to the outbox.");
        Ok(path)
    }
}

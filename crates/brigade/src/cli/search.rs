//! `brigade search`: ingest documents into an index with a progress bar, query it, and ask
//! it questions — the same code paths as the HTTP API, from a terminal.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use brigade_core::settings::Settings;
use brigade_search::query::Mode;
use brigade_search::{Search, SearchError};
use brigade_store::{Access, Store, StoreError};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::Failure;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ModeArg {
    Hybrid,
    Vector,
    Keyword,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SearchCommand {
    /// (Re)index documents: the index's own `path` glob, or the files, directories and
    /// globs given. Unchanged documents are skipped; with no PATH, documents whose file is
    /// gone are removed.
    #[command(
        after_help = "Examples (the demo app's `guide` index):\n  brigade search ingest guide --dir examples/demo\n  brigade search ingest guide docs/ 'docs/**/*.md' --dir examples/demo"
    )]
    Ingest {
        /// The index, as named in [[search.indexes]] of brigade.toml.
        index: String,
        /// Files, directories or globs (relative to the app directory).
        paths: Vec<String>,
    },
    /// Search an index and print the ranked hits with their sources.
    #[command(
        after_help = "Examples (the demo app's `guide` index):\n  brigade search query guide \"how do I filter records\" --dir examples/demo\n  brigade search query guide rules --mode keyword -k 3 --dir examples/demo\n  brigade search query guide rules --filter \"path ~ 'docs/'\" --dir examples/demo"
    )]
    Query {
        index: String,
        /// What to look for.
        text: String,
        /// Hits to print.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        #[arg(long, value_enum, default_value = "hybrid")]
        mode: ModeArg,
        /// Keep documents matching this filter (id, title, path, kind and metadata keys; or
        /// the collection's fields for a collection index).
        #[arg(long)]
        filter: Option<String>,
        /// Print JSON (the API's shape) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask a question: the answer and the passages it came from (extractive without [llm]).
    #[command(
        after_help = "Example (the demo app's `guide` index):\n  brigade search ask guide \"How do I create a collection?\" --dir examples/demo"
    )]
    Ask {
        index: String,
        question: String,
        #[arg(short, long)]
        k: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn failure(e: SearchError) -> Failure {
    match e {
        e @ (SearchError::Invalid { .. }
        | SearchError::UnknownIndex(_)
        | SearchError::Store(StoreError::Invalid(_))) => Failure::Usage(e.to_string()),
        e => Failure::Runtime(anyhow::Error::new(e)),
    }
}

/// Opens the store (migrations applied) and the search indexes `names` of `settings` (only
/// those: loading another index's local model would cost seconds and memory for nothing); an
/// embedder that does not load is a configuration error (exit 2).
pub(crate) async fn open(
    settings: &Settings,
    names: &[String],
) -> Result<(Arc<Store>, Search), Failure> {
    let mut settings = settings.clone();
    settings.search.indexes.retain(|i| names.contains(&i.name));
    let settings = &settings;
    let store = Arc::new(
        Store::open(settings)
            .await
            .context("opening the database")?,
    );
    store.migrate_up().await.context("applying migrations")?;
    let search = Search::open(store.clone(), settings)
        .await
        .map_err(|e| match e {
            e @ SearchError::Embed { .. } => Failure::Usage(e.to_string()),
            e => Failure::Runtime(anyhow::Error::new(e)),
        })?;
    Ok((store, search))
}

/// A usage error naming brigade.toml and the indexes it has, unless `name` is one of them.
pub(crate) fn check_index(settings: &Settings, name: &str) -> Result<(), Failure> {
    if settings.search.indexes.iter().any(|i| i.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = settings
        .search
        .indexes
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    Err(Failure::Usage(format!(
        "{}/brigade.toml: no [[search.indexes]] named `{name}` (indexes: {})",
        settings.dir.display(),
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )))
}

pub(crate) async fn run(settings: Settings, cmd: SearchCommand) -> Result<(), Failure> {
    let name = match &cmd {
        SearchCommand::Ingest { index, .. }
        | SearchCommand::Query { index, .. }
        | SearchCommand::Ask { index, .. } => index.clone(),
    };
    check_index(&settings, &name)?;
    let (store, search) = open(&settings, std::slice::from_ref(&name)).await?;
    let result = match cmd {
        SearchCommand::Ingest { index, paths } => ingest(&search, &index, &paths).await,
        SearchCommand::Query {
            index,
            text,
            k,
            mode,
            filter,
            json,
        } => {
            let mode = match mode {
                ModeArg::Hybrid => Mode::Hybrid,
                ModeArg::Vector => Mode::Vector,
                ModeArg::Keyword => Mode::Keyword,
            };
            query(&search, &index, &text, k, mode, filter.as_deref(), json).await
        }
        SearchCommand::Ask {
            index,
            question,
            k,
            json,
        } => ask(&search, &index, &question, k, json).await,
    };
    store.close().await;
    result
}

async fn ingest(search: &Search, index: &str, paths: &[String]) -> Result<(), Failure> {
    let started = Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} documents, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("ingesting {index}"));
    let progress = |p: brigade_search::ingest::Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    let report = search
        .ingest_paths(index, paths, &progress)
        .await
        .map_err(failure)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let chunks = if report.indexed > 0 {
        format!(
            ", {} chunks ({} embedded, {} from the cache)",
            report.chunks,
            report.embedded,
            report.chunks - report.embedded
        )
    } else {
        String::new()
    };
    println!(
        "{index}: {} documents ({} indexed, {} unchanged, {} removed, {} failed){chunks} in {secs:.1} s",
        report.documents,
        report.indexed,
        report.skipped,
        report.deleted,
        report.failed.len(),
    );
    if report.indexed > 0 && secs > 0.0 {
        println!(
            "  {:.0} documents/s, {:.0} chunks/s",
            report.indexed as f64 / secs,
            report.chunks as f64 / secs
        );
    }
    for (doc, reason) in &report.failed {
        eprintln!("  skipped {doc}: {reason}");
    }
    Ok(())
}

fn one_line(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        flat.chars().take(max).collect::<String>() + "…"
    } else {
        flat
    }
}

async fn query(
    search: &Search,
    index: &str,
    text: &str,
    k: usize,
    mode: Mode,
    filter: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let started = Instant::now();
    let hits = search
        .search(index, text, k, mode, filter, &Access::Superuser)
        .await
        .map_err(failure)?;
    if json {
        println!("{}", serde_json::json!({ "hits": hits }));
        return Ok(());
    }
    if hits.is_empty() {
        println!("No hits.");
    }
    for (i, hit) in hits.iter().enumerate() {
        // The heading path usually starts with the page's own title: print the rest.
        let title_prefix = format!("{} > ", hit.source.title);
        let heading = match hit.heading.strip_prefix(&title_prefix) {
            _ if hit.heading.is_empty() || hit.heading == hit.source.title => String::new(),
            Some(rest) => format!(" › {rest}"),
            None => format!(" › {}", hit.heading),
        };
        println!(
            "{:>2}. {:.4}  {}{heading}\n    {} (chunk {})\n    {}\n",
            i + 1,
            hit.score,
            hit.source.title,
            hit.source.path_or_url,
            hit.source.chunk,
            terminal_text(&one_line(hit.highlights.first().unwrap_or(&hit.text), 220)),
        );
    }
    eprintln!(
        "{} hits in {} ms",
        hits.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn ask(
    search: &Search,
    index: &str,
    question: &str,
    k: Option<usize>,
    json: bool,
) -> Result<(), Failure> {
    let answer = search
        .answer(index, question, k, &Access::Superuser)
        .await
        .map_err(failure)?;
    if json {
        println!("{}", serde_json::to_string(&answer).unwrap_or_default());
        return Ok(());
    }
    println!("{}\n", answer.answer);
    for (i, s) in answer.sources.iter().enumerate() {
        println!(
            "[{}] {} — {}\n    {}",
            i + 1,
            s.title,
            s.path_or_url,
            one_line(&s.snippet, 200)
        );
    }
    let model = answer.model.as_deref().unwrap_or("no model");
    eprintln!(
        "\n{} answer ({model}) in {} ms",
        answer.mode, answer.latency_ms
    );
    Ok(())
}

/// A highlight for the terminal: `<mark>` in bold when stdout is a terminal and `NO_COLOR`
/// is unset (plain otherwise), and the HTML escapes of highlights turned back into text.
fn terminal_text(highlight: &str) -> String {
    let bold = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (on, off) = if bold {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    highlight
        .replace("<mark>", on)
        .replace("</mark>", off)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

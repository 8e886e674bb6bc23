//! [`Search`]: the indexes of an app directory and the verbs the API and the CLI use —
//! ingest, delete, search, answer — with access rules, metrics and the answer cache.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use brigade_core::settings::{IndexSettings, IndexSource, LlmSettings, Settings};
use brigade_store::search_index::{DocumentRow, Restriction, Scope};
use brigade_store::{Access, Store};

use crate::cache::{self, AnswerCache};
use crate::embed::Embedder;
use crate::embed::builtin::Builtin;
use crate::embed::local::LocalEmbedder;
use crate::embed::openai::OpenAiEmbedder;
use crate::error::SearchError;
use crate::index::Index;
use crate::ingest::{self, IngestReport, NewDocument, Progress};
use crate::llm::{ChatMessage, LlmClient, LlmConfig};
use crate::query::{self, Hit, Mode};
use crate::rag::{self, Answer, Usage};
use crate::redact::redact;

/// The state of an index's background ingest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Job {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
    pub done: usize,
    pub total: usize,
    pub chunks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<IngestReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Default for Job {
    /// An index nothing has ingested since the process started.
    fn default() -> Self {
        Job {
            state: "idle",
            done: 0,
            total: 0,
            chunks: 0,
            started: None,
            finished: None,
            report: None,
            error: None,
        }
    }
}

/// An index as listed by `GET /api/search`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexInfo {
    pub name: String,
    /// `path`, `collection` or `api`.
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    pub embedder: String,
    /// `{max_tokens, overlap}` of the chunker.
    pub chunk: serde_json::Value,
    /// How hybrid ranks: `{vector_weight, same_document_weight}`.
    pub ranking: serde_json::Value,
    pub documents: i64,
    pub version: i64,
    pub ingest: Job,
}

/// A model answers questions.
struct Llm {
    settings: LlmSettings,
    client: LlmClient,
}

/// The search indexes of one app.
pub struct Search {
    store: Arc<Store>,
    dir: PathBuf,
    indexes: BTreeMap<String, Arc<Index>>,
    llm: Option<Llm>,
    cache: AnswerCache,
    jobs: Mutex<HashMap<String, Job>>,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("indexes", &self.indexes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds the embedder an index names.
///
/// # Errors
/// [`SearchError::Embed`] when a local model does not load or an `openai:` embedder has no
/// server to talk to.
pub fn embedder(
    index: &IndexSettings,
    dir: &Path,
    llm: Option<&LlmSettings>,
) -> Result<Arc<dyn Embedder>, SearchError> {
    match index.embedder.split_once(':') {
        Some(("local", path)) => {
            let full = if Path::new(path).is_absolute() {
                PathBuf::from(path)
            } else {
                dir.join(path)
            };
            Ok(Arc::new(LocalEmbedder::load(&full)?))
        }
        Some(("openai", model)) => {
            let url = index
                .embedder_url
                .clone()
                .or_else(|| llm.map(|l| l.base_url.clone()))
                .ok_or_else(|| {
                    SearchError::embed(format!(
                        "`{}` needs a server: set embedder_url on the index or [llm] base_url",
                        index.embedder
                    ))
                })?;
            let key = match llm {
                Some(l) => l.api_key().map_err(SearchError::embed)?,
                None => None,
            }
            .map(|k| k.expose().to_string());
            let timeout = llm.map_or(crate::llm::DEFAULT_TIMEOUT, |l| l.timeout);
            let retries = llm.map_or(crate::llm::DEFAULT_MAX_RETRIES, |l| l.max_retries);
            Ok(Arc::new(OpenAiEmbedder::new(
                &url, model, key, timeout, retries,
            )?))
        }
        Some((kind, _)) => Err(SearchError::embed(format!(
            "`{kind}:` embedders are not available in this build"
        ))),
        None => Ok(Arc::new(Builtin)),
    }
}

/// Documents cannot be written to an index that follows a collection.
fn follows(index: &str, collection: &str) -> SearchError {
    SearchError::invalid(
        "index",
        format!(
            "`{index}` follows collection `{collection}`: write records there, it indexes them by \
             itself"
        ),
    )
}

fn llm_client(settings: &LlmSettings) -> Result<LlmClient, SearchError> {
    let mut config = LlmConfig::new(settings.base_url.clone(), settings.model.clone());
    config.api_key = settings
        .api_key()
        .map_err(SearchError::embed)?
        .map(|k| k.expose().to_string());
    config.timeout = settings.timeout;
    config.max_retries = settings.max_retries;
    LlmClient::new(config)
}

impl Search {
    /// Opens the indexes of `settings` over `store` (embedders loaded, tables prepared).
    ///
    /// # Errors
    /// [`SearchError::Embed`] for an embedder that cannot load; store errors.
    pub async fn open(store: Arc<Store>, settings: &Settings) -> Result<Search, SearchError> {
        let mut indexes = BTreeMap::new();
        for spec in &settings.search.indexes {
            let embedder =
                embedder(spec, &settings.dir, settings.llm.as_ref()).map_err(|e| match e {
                    SearchError::Embed { message, source } => SearchError::Embed {
                        message: format!("index `{}`: {message}", spec.name),
                        source,
                    },
                    other => other,
                })?;
            let index = Index::new(spec.clone(), embedder);
            index.open(&store).await?;
            indexes.insert(spec.name.clone(), Arc::new(index));
        }
        Ok(Search {
            store,
            dir: settings.dir.clone(),
            indexes,
            llm: match &settings.llm {
                Some(l) => Some(Llm {
                    settings: l.clone(),
                    client: llm_client(l)?,
                }),
                None => None,
            },
            cache: AnswerCache::default(),
            jobs: Mutex::new(HashMap::new()),
        })
    }

    /// The store the indexes live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The index called `name`.
    ///
    /// # Errors
    /// [`SearchError::UnknownIndex`].
    pub fn index(&self, name: &str) -> Result<Arc<Index>, SearchError> {
        self.indexes
            .get(name)
            .cloned()
            .ok_or_else(|| SearchError::UnknownIndex(name.to_string()))
    }

    /// Every index.
    pub fn indexes(&self) -> impl Iterator<Item = &Arc<Index>> {
        self.indexes.values()
    }

    fn set_job(&self, name: &str, update: impl FnOnce(&mut Job)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        update(jobs.entry(name.to_string()).or_default());
    }

    /// The state of the index's background ingest.
    pub fn job(&self, name: &str) -> Job {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(name).cloned().unwrap_or_default()
    }

    /// Describes every index.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list(&self) -> Result<Vec<IndexInfo>, SearchError> {
        let mut out = Vec::new();
        for index in self.indexes.values() {
            // The ingest state first: when it says `done`, the counts read after it include
            // every document that ingest committed (read the other way round, a list could say
            // `done` beside the count of a moment before the last commit).
            let ingest = self.job(index.name());
            let (_, documents) = self
                .store
                .search_index(index.name())
                .documents(0, 0)
                .await?;
            let (source, path, collection) = match &index.settings.source {
                IndexSource::Path(p) => ("path", Some(p.clone()), None),
                IndexSource::Collection { name, .. } => ("collection", None, Some(name.clone())),
                IndexSource::Api => ("api", None, None),
            };
            out.push(IndexInfo {
                name: index.name().to_string(),
                source,
                path,
                collection,
                embedder: index.settings.embedder.clone(),
                chunk: serde_json::json!({
                    "max_tokens": index.settings.max_tokens,
                    "overlap": index.settings.overlap,
                }),
                ranking: serde_json::json!({
                    "vector_weight": index.settings.vector_weight,
                    "same_document_weight": index.settings.same_document_weight,
                }),
                documents,
                version: self.store.search_index(index.name()).version().await?,
                ingest,
            });
        }
        Ok(out)
    }

    /// Ingests files into a path-backed or API index: `paths` (files, directories, globs)
    /// or, when empty, the index's own `path` glob — then documents whose file is gone are
    /// deleted too.
    ///
    /// # Errors
    /// [`SearchError::UnknownIndex`], [`SearchError::Invalid`] for a path that does not exist
    /// or an index that follows a collection; store and embedder errors.
    pub async fn ingest_paths(
        &self,
        name: &str,
        paths: &[String],
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<IngestReport, SearchError> {
        let index = self.index(name)?;
        let (patterns, complete) = match (&index.settings.source, paths.is_empty()) {
            (IndexSource::Collection { name: c, .. }, _) => return Err(follows(name, c)),
            (IndexSource::Path(glob), true) => (vec![glob.clone()], true),
            (IndexSource::Api, true) => {
                return Err(SearchError::invalid(
                    "path",
                    format!(
                        "index `{name}` has no `path` in brigade.toml; name the files to ingest"
                    ),
                ));
            }
            (_, false) => (paths.to_vec(), false),
        };
        let files = if complete {
            // The index's own glob may legitimately match nothing yet.
            ingest::list_files(&self.dir, &patterns).or_else(|e| match e {
                SearchError::Invalid { .. } => Ok(Vec::new()),
                e => Err(e),
            })?
        } else {
            ingest::list_files(&self.dir, &patterns)?
        };
        ingest::files(&self.store, &index, &self.dir, &files, complete, progress).await
    }

    /// Runs [`Search::ingest_paths`] of the whole source of each path-backed index, keeping
    /// its progress for `GET /api/search`.
    pub async fn ingest_all(&self) {
        for index in self.indexes.values() {
            if !matches!(index.settings.source, IndexSource::Path(_)) {
                continue;
            }
            let name = index.name().to_string();
            self.set_job(&name, |j| {
                *j = Job {
                    state: "running",
                    started: Some(brigade_core::time::now()),
                    ..Job::default()
                };
            });
            let progress = |p: Progress| {
                self.set_job(&name, |j| {
                    j.done = p.done;
                    j.total = p.total;
                    j.chunks = p.chunks;
                });
            };
            let started = Instant::now();
            let outcome = self.ingest_paths(&name, &[], &progress).await;
            match outcome {
                Ok(report) => {
                    tracing::info!(
                        index = %name,
                        documents = report.documents,
                        indexed = report.indexed,
                        skipped = report.skipped,
                        deleted = report.deleted,
                        chunks = report.chunks,
                        failed = report.failed.len(),
                        seconds = started.elapsed().as_secs_f64(),
                        "search index ingested"
                    );
                    self.set_job(&name, |j| {
                        j.state = "done";
                        j.finished = Some(brigade_core::time::now());
                        j.report = Some(report);
                    });
                }
                Err(e) => {
                    tracing::error!(index = %name, "search ingest failed: {e}");
                    self.set_job(&name, |j| {
                        j.state = "failed";
                        j.finished = Some(brigade_core::time::now());
                        j.error = Some(e.to_string());
                    });
                }
            }
        }
    }

    /// Ingests documents posted to the API.
    ///
    /// # Errors
    /// As [`Search::ingest_paths`].
    pub async fn put_documents(
        &self,
        name: &str,
        docs: Vec<NewDocument>,
    ) -> Result<IngestReport, SearchError> {
        let index = self.index(name)?;
        if let IndexSource::Collection { name: c, .. } = &index.settings.source {
            return Err(follows(name, c));
        }
        ingest::documents(&self.store, &index, docs).await
    }

    /// Deletes a document; `false` when there was none.
    ///
    /// # Errors
    /// [`SearchError::UnknownIndex`]; store errors.
    pub async fn delete_document(&self, name: &str, id: &str) -> Result<bool, SearchError> {
        let index = self.index(name)?;
        let change = self.store.search_index(name).delete_document(id).await?;
        if let Some(change) = &change {
            index.apply(change, &|_| None);
        }
        Ok(change.is_some())
    }

    /// A page of the index's documents and the total.
    ///
    /// # Errors
    /// [`SearchError::UnknownIndex`]; store errors.
    pub async fn documents(
        &self,
        name: &str,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<DocumentRow>, i64), SearchError> {
        self.index(name)?;
        Ok(self
            .store
            .search_index(name)
            .documents((page - 1) * per_page, per_page)
            .await?)
    }

    fn restriction(
        &self,
        index: &Index,
        filter: Option<&str>,
        access: &Access,
    ) -> Result<Option<Restriction>, SearchError> {
        let scope = match &index.settings.source {
            IndexSource::Collection { name, .. } => Scope::Collection(name),
            _ => Scope::Documents {
                rule: index.settings.rule.as_deref(),
            },
        };
        Ok(self
            .store
            .search_index(index.name())
            .restriction(scope, filter, access)?)
    }

    /// Searches an index.
    ///
    /// # Errors
    /// [`SearchError::UnknownIndex`], [`SearchError::Invalid`] (`q`, `k`, `filter`), a
    /// forbidden store error when the caller may not read the index; store and embedder
    /// errors.
    pub async fn search(
        &self,
        name: &str,
        q: &str,
        k: usize,
        mode: Mode,
        filter: Option<&str>,
        access: &Access,
    ) -> Result<Vec<Hit>, SearchError> {
        let index = self.index(name)?;
        query::check_query("q", q)?;
        let restriction = self.restriction(&index, filter, access)?;
        query::search(&self.store, &index, q, k, mode, restriction.as_ref()).await
    }

    /// Answers a question from an index.
    ///
    /// # Errors
    /// As [`Search::search`] (on `question`), plus [`SearchError::LlmTimeout`] and
    /// [`SearchError::Llm`] when the model fails.
    pub async fn answer(
        &self,
        name: &str,
        question: &str,
        k: Option<usize>,
        access: &Access,
    ) -> Result<Answer, SearchError> {
        let started = Instant::now();
        let index = self.index(name)?;
        query::check_query("question", question)?;
        let k = k.unwrap_or(rag::DEFAULT_K);
        if k == 0 || k > rag::MAX_K {
            return Err(SearchError::invalid(
                "k",
                format!("{k} is not between 1 and {}", rag::MAX_K),
            ));
        }
        let restriction = self.restriction(&index, None, access)?;
        let version = self.store.search_index(name).version().await?;
        let scope = format!("{restriction:?}");
        let key = cache::key(name, version, k, &scope, question);
        let outcome = async {
            if let Some(mut hit) = self.cache.get(&key) {
                if self.still_visible(name, &hit, restriction.as_ref()).await? {
                    hit.cached = true;
                    return Ok(hit);
                }
                tracing::debug!(index = name, "A cached answer quotes a source the caller can no longer see; answering afresh.");
                self.cache.remove(&key);
            }
            let hits = query::search(
                &self.store,
                &index,
                question,
                k,
                Mode::Hybrid,
                restriction.as_ref(),
            )
            .await?;
            let answer = self.compose(name, question, &hits).await?;
            self.cache.put(key.clone(), answer.clone());
            Ok::<Answer, SearchError>(answer)
        }
        .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let labels = [("index", name.to_string())];
        metrics::histogram!("rag_latency_seconds", &labels).record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(mut answer) => {
                answer.latency_ms = latency_ms;
                metrics::counter!("rag_requests_total", "index" => name.to_string(), "mode" => answer.mode.clone(), "outcome" => if answer.cached { "cached" } else { "answered" }).increment(1);
                tracing::info!(
                    target: "brigade::rag",
                    index = name,
                    question = %redact(question),
                    answer = %redact(&answer.answer),
                    mode = %answer.mode,
                    sources = answer.sources.len(),
                    cached = answer.cached,
                    latency_ms,
                    "question answered"
                );
                Ok(answer)
            }
            Err(e) => {
                metrics::counter!("rag_requests_total", "index" => name.to_string(), "mode" => if self.llm.is_some() { "generative" } else { "extractive" }, "outcome" => "failed").increment(1);
                tracing::warn!(
                    target: "brigade::rag",
                    index = name,
                    question = %redact(question),
                    latency_ms,
                    "question failed: {}",
                    redact(&e.to_string())
                );
                Err(e)
            }
        }
    }

    /// Whether the caller can still see every source of a cached `answer`: a change that
    /// leaves a document's text alone (a record's owner) does not bump the index version,
    /// yet may take the document out of the caller's rule.
    async fn still_visible(
        &self,
        name: &str,
        answer: &Answer,
        restriction: Option<&Restriction>,
    ) -> Result<bool, SearchError> {
        let Some(restriction) = restriction else {
            return Ok(true);
        };
        let mut ids: Vec<String> = answer
            .sources
            .iter()
            .map(|s| s.document_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(true);
        }
        let visible = self
            .store
            .search_index(name)
            .visible_documents(&ids, restriction)
            .await?;
        Ok(ids.iter().all(|id| visible.contains(id)))
    }

    async fn compose(
        &self,
        name: &str,
        question: &str,
        hits: &[Hit],
    ) -> Result<Answer, SearchError> {
        // Without a model, or without passages to give it, the answer is extractive.
        let extractive = |answer: String| Answer {
            answer,
            mode: "extractive".into(),
            sources: rag::sources(question, &hits[..hits.len().min(3)]),
            model: None,
            usage: None,
            latency_ms: 0,
            cached: false,
        };
        if hits.is_empty() {
            return Ok(extractive(format!(
                "No passage of index `{name}` matches the question, so there is nothing to answer from."
            )));
        }
        let Some(llm) = &self.llm else {
            return Ok(extractive(rag::extractive(question, hits)));
        };
        let used = rag::within_budget(hits, llm.settings.context_tokens);
        let (text, model, usage) = self.generate(llm, question, &used).await?;
        let labels = |kind: &'static str| [("index", name.to_string()), ("kind", kind.to_string())];
        metrics::counter!("llm_tokens_total", &labels("prompt")).increment(usage.prompt_tokens);
        metrics::counter!("llm_tokens_total", &labels("completion"))
            .increment(usage.completion_tokens);
        Ok(Answer {
            answer: text,
            mode: "generative".into(),
            sources: rag::sources(question, &used),
            model: Some(model),
            usage: Some(usage),
            latency_ms: 0,
            cached: false,
        })
    }

    async fn generate(
        &self,
        llm: &Llm,
        question: &str,
        hits: &[Hit],
    ) -> Result<(String, String, Usage), SearchError> {
        let messages = [
            ChatMessage::system(rag::SYSTEM_PROMPT),
            ChatMessage::user(rag::user_prompt(question, hits)),
        ];
        let done = llm
            .client
            .chat(&messages, llm.settings.max_answer_tokens)
            .await?;
        Ok((
            done.text,
            done.model,
            Usage {
                prompt_tokens: done.prompt_tokens,
                completion_tokens: done.completion_tokens,
            },
        ))
    }
}

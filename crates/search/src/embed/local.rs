//! `local:PATH`: a sentence-transformers model directory run in process on the CPU.
//!
//! [`LocalEmbedder::load`] reads `config.json` (a BERT config), `tokenizer.json` and
//! `model.safetensors`, plus `sentence_bert_config.json` (`max_seq_length`) and
//! `1_Pooling/config.json` when present. Texts are tokenized without the tokenizer's own
//! padding, truncated to `max_seq_length`, grouped by length into batches padded to their
//! longest member, run through candle's `BertModel`, pooled over the attention mask and
//! L2-normalised: the same vectors sentence-transformers computes.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::{Embedder, Purpose, normalize};
use crate::error::SearchError;

const CONFIG: &str = "config.json";
const TOKENIZER: &str = "tokenizer.json";
const WEIGHTS: &str = "model.safetensors";
const SENTENCE_BERT_CONFIG: &str = "sentence_bert_config.json";
const POOLING_CONFIG: &str = "1_Pooling/config.json";
const LAYOUT_HINT: &str = "a sentence-transformers directory holds config.json, tokenizer.json and \
     model.safetensors (scripts/fetch-minilm.sh DIR fetches all-MiniLM-L6-v2)";

/// At most this many texts go through the model in one forward pass.
const MAX_BATCH_TEXTS: usize = 32;
/// At most this many (padded) tokens per forward pass: 4 passages of 256 tokens, or 32 short
/// texts. Measured on 64 passages of ~250 tokens, batches of 4, 8 and 16 such passages ran at
/// the same speed, but peak RSS was 200, 410 and 490 MB (attention scores are 12 heads x 256
/// x 256 floats per passage per layer).
const MAX_BATCH_TOKENS: usize = 4 * 256;
/// How much of the weights file, at each end, goes into [`LocalEmbedder::id`].
const HASHED_WEIGHT_BYTES: usize = 1 << 20;

/// How token vectors become one text vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// The mean over real (unpadded) tokens; what all-MiniLM-L6-v2 and most models use.
    Mean,
    /// The first token's vector (`[CLS]`), as BGE models use.
    Cls,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// The part that runs on a blocking thread, shared between concurrent `embed` calls.
struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
    pad_id: u32,
}

/// A sentence-transformers BERT model (such as all-MiniLM-L6-v2) run on the CPU with candle.
///
/// Loading costs about the size of the weights in memory; embedding runs on tokio's blocking
/// pool and uses every core through candle's matrix kernels.
pub struct LocalEmbedder {
    id: String,
    dims: usize,
    max_seq_length: usize,
    model: Arc<Model>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("id", &self.id)
            .field("dims", &self.dims)
            .field("max_seq_length", &self.max_seq_length)
            .field("pooling", &self.model.pooling)
            .finish_non_exhaustive()
    }
}

fn embed_error(path: &Path, message: impl Display) -> SearchError {
    SearchError::embed(format!("{}: {message}", path.display()))
}

/// Reads a file the model directory must have, saying what the directory should hold if not.
fn read_required(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), SearchError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut message = format!("not found; {LAYOUT_HINT}");
            if name == WEIGHTS && dir.join("pytorch_model.bin").exists() {
                message.push_str(
                    "; this directory has only pytorch_model.bin, which must first be \
                     converted to safetensors",
                );
            }
            Err(embed_error(&path, message))
        }
        Err(e) => Err(embed_error(&path, e)),
    }
}

/// Reads and parses an optional JSON file: `None` when it does not exist.
fn read_optional_json<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, SearchError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| embed_error(&path, format!("invalid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(embed_error(&path, e)),
    }
}

fn pooling(dir: &Path) -> Result<Pooling, SearchError> {
    let Some(config) = read_optional_json::<PoolingConfig>(dir, POOLING_CONFIG)? else {
        return Ok(Pooling::Mean);
    };
    let others = config.pooling_mode_max_tokens || config.pooling_mode_mean_sqrt_len_tokens;
    match (
        config.pooling_mode_mean_tokens,
        config.pooling_mode_cls_token,
        others,
    ) {
        (true, false, false) => Ok(Pooling::Mean),
        (false, true, false) => Ok(Pooling::Cls),
        _ => Err(embed_error(
            &dir.join(POOLING_CONFIG),
            "unsupported pooling; the local embedder supports exactly one of \
             pooling_mode_mean_tokens or pooling_mode_cls_token",
        )),
    }
}

/// `local:<dir name>:<12 hex digits>`: SHA-256 over both JSON files, the effective settings,
/// and the weights' size with their first and last MiB (the first MiB holds the safetensors
/// header: every tensor's name, shape and offset).
fn identity(dir: &Path, config: &[u8], tokenizer: &[u8], weights: &[u8], settings: &str) -> String {
    let mut hash = Sha256::new();
    for part in [config, tokenizer, settings.as_bytes()] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.update((weights.len() as u64).to_le_bytes());
    hash.update(&weights[..weights.len().min(HASHED_WEIGHT_BYTES)]);
    hash.update(&weights[weights.len().saturating_sub(HASHED_WEIGHT_BYTES)..]);
    let digest = hash.finalize();
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    // `.` and `..` have no file name of their own; their canonical form does.
    let file_name = |p: &Path| Some(p.file_name()?.to_string_lossy().into_owned());
    let name = file_name(dir)
        .or_else(|| file_name(&std::fs::canonicalize(dir).ok()?))
        .unwrap_or_else(|| "model".to_string());
    format!("local:{name}:{short}")
}

impl LocalEmbedder {
    /// Loads the sentence-transformers model in `dir`.
    ///
    /// Blocking: it reads the whole weights file (90 MB for all-MiniLM-L6-v2) and builds the
    /// model, so async callers should run it in `spawn_blocking`.
    ///
    /// # Errors
    /// [`SearchError::Embed`] naming the file that is missing or invalid.
    pub fn load(dir: &Path) -> Result<LocalEmbedder, SearchError> {
        let started = Instant::now();
        if !dir.is_dir() {
            return Err(embed_error(dir, format!("not a directory; {LAYOUT_HINT}")));
        }
        let (config_path, config_bytes) = read_required(dir, CONFIG)?;
        let config: BertConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            embed_error(
                &config_path,
                format!("not a BERT config the model can use: {e}"),
            )
        })?;
        if let Some(kind) = config.model_type.as_deref()
            && kind != "bert"
        {
            return Err(embed_error(
                &config_path,
                format!(
                    "model_type `{kind}` is not supported; the local embedder runs BERT models \
                     such as all-MiniLM-L6-v2"
                ),
            ));
        }
        let max_seq_length = read_optional_json::<SentenceBertConfig>(dir, SENTENCE_BERT_CONFIG)?
            .and_then(|c| c.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let pooling = pooling(dir)?;

        let (tokenizer_path, tokenizer_bytes) = read_required(dir, TOKENIZER)?;
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| embed_error(&tokenizer_path, format!("invalid tokenizer: {e}")))?;
        // tokenizer.json may pad every text to a fixed length (128 for all-MiniLM-L6-v2) and
        // truncate at another; batches are padded here instead, to their longest text.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| embed_error(&tokenizer_path, format!("invalid truncation: {e}")))?;
        // Padded positions are masked out, so any valid token id would do.
        let pad_id = u32::try_from(config.pad_token_id).unwrap_or(0);

        let (weights_path, weights) = read_required(dir, WEIGHTS)?;
        let settings = format!("max_seq_length={max_seq_length};pooling={pooling:?}");
        let id = identity(dir, &config_bytes, &tokenizer_bytes, &weights, &settings);
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| embed_error(&weights_path, format!("invalid safetensors: {e}")))?;
        let bert = BertModel::load(vb, &config).map_err(|e| {
            embed_error(
                &weights_path,
                format!("does not match config.json's BERT model: {e}"),
            )
        })?;

        tracing::info!(
            id = %id,
            dims = config.hidden_size,
            max_seq_length,
            elapsed_ms = started.elapsed().as_millis(),
            "Loaded local embedder."
        );
        Ok(LocalEmbedder {
            id,
            dims: config.hidden_size,
            max_seq_length,
            model: Arc::new(Model {
                bert,
                tokenizer,
                pooling,
                pad_id,
            }),
        })
    }

    /// Length of every vector: the model's hidden size (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Tokens per text that reach the model; later ones are dropped.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }
}

impl Model {
    /// Embeds `texts` in order; CPU-bound, for a blocking thread.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, SearchError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| SearchError::embed_from("tokenizing failed", e))?;
        // Texts of similar length share a batch, so little compute goes to padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        let mut vectors = vec![Vec::new(); texts.len()];
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let mut n = 1;
            while n < rest.len()
                && n < MAX_BATCH_TEXTS
                && (n + 1) * encodings[rest[n]].len() <= MAX_BATCH_TOKENS
            {
                n += 1;
            }
            let (batch, tail) = rest.split_at(n);
            let batch_encodings: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let pooled = self
                .forward(&batch_encodings)
                .map_err(|e| SearchError::embed_from("the model failed", e))?;
            for (&i, mut v) in batch.iter().zip(pooled) {
                normalize(&mut v);
                vectors[i] = v;
            }
            rest = tail;
        }
        Ok(vectors)
    }

    /// One forward pass over texts padded to the longest; returns the pooled vectors.
    fn forward(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for encoding in batch {
            let pad = len - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            mask.extend_from_slice(encoding.get_attention_mask());
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let shape = (batch.len(), len);
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
        let hidden = self.bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let pooled = match self.pooling {
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                // As sentence-transformers does, so a text of no tokens gives no NaN.
                summed.broadcast_div(&mask.sum(1)?.maximum(1e-9)?)?
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        };
        pooled.to_vec2::<f32>()
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    /// Sentence-transformers models embed queries and passages alike, so `purpose` is unused.
    async fn embed(
        &self,
        texts: &[String],
        _purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, SearchError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let model = Arc::clone(&self.model);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || model.embed(&texts))
            .await
            .map_err(|e| SearchError::embed_from("the embedding task failed", e))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::Instant;

    use super::*;

    use crate::test_model::{MODEL_ENV, minilm_dir as model_dir};

    fn model() -> &'static LocalEmbedder {
        static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
        MODEL.get_or_init(|| {
            let dir = model_dir();
            LocalEmbedder::load(&dir).unwrap_or_else(|e| {
                panic!(
                    "{MODEL_ENV}={}: {e}; see scripts/fetch-minilm.sh",
                    dir.display()
                )
            })
        })
    }

    async fn embed(texts: &[&str]) -> Vec<Vec<f32>> {
        let texts: Vec<String> = texts.iter().map(ToString::to_string).collect();
        model().embed(&texts, Purpose::Document).await.unwrap()
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn assert_unit(v: &[f32]) {
        let norm = dot(v, v).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }

    /// A long English text: `words` words of prose, sentences repeating.
    fn long_text(words: usize) -> String {
        PASSAGE_SENTENCES
            .iter()
            .cycle()
            .flat_map(|s| s.split_whitespace())
            .take(words)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[tokio::test]
    async fn vectors_have_the_model_dims_and_unit_length() {
        assert_eq!(model().dims(), 384);
        assert_eq!(model().max_seq_length(), 256);
        let vectors = embed(&["The cat sits outside", "", "A man is playing guitar"]).await;
        assert_eq!(vectors.len(), 3);
        for v in &vectors {
            assert_eq!(v.len(), 384);
            assert_unit(v);
        }
    }

    #[tokio::test]
    async fn no_texts_give_no_vectors() {
        assert!(model().embed(&[], Purpose::Query).await.unwrap().is_empty());
    }

    /// Reference values from an independent float64 numpy implementation of BERT + mean
    /// pooling over the same safetensors and `tokenizers` 0.23.3 (Python). Its first vector
    /// matches the published sentence-transformers output for this sentence
    /// (0.0676569, 0.0634960, 0.0487132, 0.0793050, ...).
    #[tokio::test]
    async fn vectors_match_the_sentence_transformers_reference() {
        let v = embed(&[
            "This is an example sentence",
            "Each sentence is converted",
            "How do I make a backup of my database?",
            "Use pg_dump to export a PostgreSQL database to a SQL file.",
        ])
        .await;
        let expected: [&[f32]; 2] = [
            &[
                0.067657, 0.063496, 0.048713, 0.079305, 0.037448, 0.002653, 0.039375, -0.007098,
            ],
            &[
                0.086439, 0.102763, 0.005395, 0.002044, -0.009963, 0.025386, 0.049288, -0.030627,
            ],
        ];
        for (got, want) in v.iter().zip(expected) {
            let diff = max_abs_diff(&got[..want.len()], want);
            assert!(diff < 1e-3, "got {:?}, want {want:?}", &got[..want.len()]);
        }
        for (a, b, want) in [(0, 1, 0.404_559), (2, 3, 0.470_193)] {
            let cos = dot(&v[a], &v[b]);
            assert!(
                (cos - want).abs() < 1e-3,
                "cos({a}, {b}) = {cos}, want {want}"
            );
        }
    }

    // The texts here are kept short: debug builds run candle about two orders of magnitude
    // slower than release builds.
    #[tokio::test]
    async fn batching_and_padding_do_not_change_vectors() {
        let short = "How do I make a backup of my database?";
        let medium = "The recipe calls for two cups of flour and a pinch of salt.";
        let long = long_text(100);
        let alone_short = embed(&[short]).await;
        let alone_medium = embed(&[medium]).await;
        // Out of length order, so the results must come back unsorted; both short texts are
        // padded to the long one's length, ten times theirs.
        let batch = embed(&[&long, short, medium]).await;
        assert!(max_abs_diff(&alone_short[0], &batch[1]) < 1e-4);
        assert!(max_abs_diff(&alone_medium[0], &batch[2]) < 1e-4);

        // More texts than one forward pass takes, each back in its place.
        let many: Vec<String> = (0..MAX_BATCH_TEXTS + 8)
            .map(|i| format!("note {i} of {}", "many ".repeat(i % 5)))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let together = embed(&refs).await;
        for i in [0, MAX_BATCH_TEXTS - 1, MAX_BATCH_TEXTS, MAX_BATCH_TEXTS + 7] {
            let alone = embed(&[refs[i]]).await;
            assert!(max_abs_diff(&alone[0], &together[i]) < 1e-4, "text {i}");
        }
    }

    #[tokio::test]
    async fn a_backup_question_is_closest_to_pg_dump() {
        let v = embed(&[
            "How do I make a backup of my database?",
            "Run pg_dump nightly to write a consistent snapshot of the PostgreSQL database to a file.",
            "The museum's new wing displays ceramics from the Ming dynasty.",
        ])
        .await;
        let related = dot(&v[0], &v[1]);
        let unrelated = dot(&v[0], &v[2]);
        assert!(
            related > unrelated + 0.2,
            "related {related}, unrelated {unrelated}"
        );
    }

    #[tokio::test]
    async fn long_texts_are_truncated_to_max_seq_length() {
        let text = long_text(2000);
        let encoding = model().model.tokenizer.encode(text.as_str(), true).unwrap();
        assert_eq!(encoding.len(), 256);
        let v = embed(&[&text]).await;
        assert_eq!(v[0].len(), 384);
        assert_unit(&v[0]);
    }

    #[test]
    fn a_missing_tokenizer_is_named() {
        let source = model_dir();
        let dir = tempfile::tempdir().unwrap();
        for name in [CONFIG, SENTENCE_BERT_CONFIG, WEIGHTS] {
            std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
        }
        let err = LocalEmbedder::load(dir.path()).unwrap_err();
        let SearchError::Embed { message, .. } = &err else {
            panic!("not an Embed error: {err:?}");
        };
        assert!(message.contains("tokenizer.json: not found"), "{message}");
        assert!(message.contains("scripts/fetch-minilm.sh"), "{message}");
    }

    #[test]
    fn a_missing_directory_or_bad_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = LocalEmbedder::load(&missing).unwrap_err().to_string();
        assert!(err.contains("nope: not a directory"), "{err}");

        std::fs::write(dir.path().join(CONFIG), r#"{"hidden_size": 384}"#).unwrap();
        let err = LocalEmbedder::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json: not a BERT config"), "{err}");
    }

    #[test]
    fn id_names_the_directory_and_covers_every_file() {
        let dir = Path::new("/models/all-MiniLM-L6-v2");
        let weights = vec![7u8; 3 << 20];
        let id = identity(dir, b"{}", b"{}", &weights, "s");
        assert!(id.starts_with("local:all-MiniLM-L6-v2:"), "{id}");
        assert_eq!(id.len(), "local:all-MiniLM-L6-v2:".len() + 12);
        assert_eq!(id, identity(dir, b"{}", b"{}", &weights, "s"));
        let mut changed_tail = weights.clone();
        *changed_tail.last_mut().unwrap() = 8;
        for other in [
            identity(dir, b"{ }", b"{}", &weights, "s"),
            identity(dir, b"{}", b"{ }", &weights, "s"),
            identity(dir, b"{}", b"{}", &weights, "t"),
            identity(dir, b"{}", b"{}", &changed_tail, "s"),
            identity(dir, b"{}", b"{}", &weights[1..], "s"),
        ] {
            assert_ne!(id, other);
        }
        assert!(model().id().starts_with("local:"));
    }

    /// Throughput on 64 passages of about 250 tokens, with load time and memory. Run alone, in
    /// release: `cargo test -p brigade-search --release -- --ignored --nocapture throughput`.
    #[tokio::test]
    #[ignore = "a measurement, not a check"]
    async fn throughput() {
        let started = Instant::now();
        let embedder = LocalEmbedder::load(&model_dir()).unwrap();
        let load = started.elapsed();
        let rss_after_load = rss_kib("VmRSS");
        let passages: Vec<String> = (0..64)
            .map(|i| {
                PASSAGE_SENTENCES
                    .iter()
                    .cycle()
                    .skip(i * 5 % PASSAGE_SENTENCES.len())
                    .flat_map(|s| s.split_whitespace())
                    .take(190 + i % 20)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let tokens: usize = embedder
            .model
            .tokenizer
            .encode_batch(passages.iter().map(String::as_str).collect(), true)
            .unwrap()
            .iter()
            .map(Encoding::len)
            .sum();
        embedder
            .embed(&passages[..4], Purpose::Document)
            .await
            .unwrap();
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        for _ in 0..3 {
            let (started, cpu) = (Instant::now(), cpu_seconds());
            embedder.embed(&passages, Purpose::Document).await.unwrap();
            best = best.min(started.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - cpu);
        }
        // CPU time too: on a shared machine the wall time says more about the neighbours.
        println!(
            "load {load:?}; RSS after load {rss_after_load} KiB; 64 passages, {} tokens on \
             average: best of 3 {best:.3} s wall = {:.1} chunks/s, {best_cpu:.2} CPU-s = {:.1} \
             chunks per CPU-second; RSS {} KiB, peak {} KiB",
            tokens / 64,
            64.0 / best,
            64.0 / best_cpu,
            rss_kib("VmRSS"),
            rss_kib("VmHWM"),
        );
    }

    /// User + system time of this process, from /proc (Linux; 100 ticks a second).
    fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat(5); `fields` starts at field 3.
        (ticks(11) + ticks(12)) as f64 / 100.0
    }

    fn rss_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    }

    /// Prose in the register of the documents Brigade indexes.
    const PASSAGE_SENTENCES: &[&str] = &[
        "Brigade stores every record in a single database, either SQLite for small deployments or PostgreSQL when several servers share the load.",
        "A pipeline reads files, web pages or SQL tables on a schedule, transforms them step by step, and writes the results back as records.",
        "Before upgrading, take a backup with pg_dump and keep it somewhere other than the machine that runs the database.",
        "Search combines a keyword index with vector similarity, so a question finds passages that share its meaning even when they share no words.",
        "Each document is split into chunks of a few hundred tokens, and every chunk is embedded once and cached by the hash of its text.",
        "Access rules are written in a small filter language and evaluated both in SQL queries and in memory for realtime subscriptions.",
        "If a scheduled run fails, the error is recorded with the step that caused it, and the next run starts from the last successful state.",
        "Administrators can rotate API keys at any time; requests signed with the old key are rejected as soon as the rotation completes.",
        "The answer endpoint retrieves the most relevant chunks, asks the configured language model to answer from them, and cites its sources.",
        "Large PDF files are parsed in a separate thread with a timeout, because malformed documents can take a very long time to read.",
        "Monitoring exposes request latency, queue depth and pipeline durations as Prometheus metrics on a separate port.",
        "When two servers share one PostgreSQL database, realtime events travel between them through LISTEN and NOTIFY.",
        "Passwords are hashed with Argon2id, and refresh tokens are rotated on every use so that a stolen token works at most once.",
        "The command line tool can create a superuser, run migrations, start the server, and benchmark pipelines on a copy of the data.",
        "Configuration lives in brigade.toml, and any setting can be overridden by an environment variable named after its section and key.",
        "Collections declare their fields and types, and every write is validated against that schema before it reaches the store.",
    ];
}

//! `openai:MODEL`: embeddings from any OpenAI-compatible `/v1/embeddings` (OpenAI, Ollama,
//! vLLM, llama.cpp's server...), sent in batches and retried like chat completions.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::{Embedder, Purpose, normalize};
use crate::error::SearchError;
use crate::llm::transport::Endpoint;

/// Texts sent per request.
pub const BATCH_SIZE: usize = 64;

/// An embedder calling an OpenAI-compatible embeddings API.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    endpoint: Endpoint,
    model: String,
    id: String,
}

#[derive(Deserialize)]
struct EmbeddingList {
    data: Vec<Embedding>,
}

#[derive(Deserialize)]
struct Embedding {
    /// The position of the input; some servers leave it out and answer in order.
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    /// An embedder for `model` at `base_url` (e.g. `https://api.openai.com/v1`). `timeout`
    /// bounds each batch request, its retries included; a failed request (connection error,
    /// 429, 5xx) is retried up to `max_retries` times.
    ///
    /// # Errors
    /// [`SearchError::Embed`] for a `base_url` that is not an http(s) URL, an empty model or
    /// an API key that cannot go in a header.
    pub fn new(
        base_url: &str,
        model: &str,
        api_key: Option<String>,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<Self, SearchError> {
        if model.trim().is_empty() {
            return Err(SearchError::embed(
                "`openai:MODEL` needs a model name, e.g. openai:text-embedding-3-small",
            ));
        }
        let endpoint = Endpoint::new(base_url, api_key, timeout, max_retries)
            .map_err(|e| SearchError::embed(format!("openai:{model}: {e}")))?;
        Ok(OpenAiEmbedder {
            endpoint,
            model: model.to_string(),
            id: format!("openai:{model}"),
        })
    }

    fn error(&self, reason: &str) -> SearchError {
        SearchError::embed(format!(
            "the embeddings server at {} ({}): {reason}",
            self.endpoint.shown(),
            self.id
        ))
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    // The OpenAI API embeds queries and passages alike, so `purpose` is not sent.
    async fn embed(
        &self,
        texts: &[String],
        _purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, SearchError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH_SIZE) {
            let body = json!({ "model": self.model, "input": batch });
            let list: EmbeddingList =
                self.endpoint.post("embeddings", &body).await.map_err(|f| {
                    SearchError::embed(f.describe(
                        &format!("the embeddings server at {}", self.endpoint.shown()),
                        "an embeddings list",
                        self.endpoint.timeout(),
                    ))
                })?;
            let batch_vectors =
                in_input_order(list.data, batch.len()).map_err(|r| self.error(&r))?;
            let dims = vectors.first().map_or(batch_vectors[0].len(), Vec::len);
            if let Some(v) = batch_vectors.iter().find(|v| v.len() != dims) {
                return Err(self.error(&format!(
                    "vectors of different lengths ({dims} and {})",
                    v.len()
                )));
            }
            vectors.extend(batch_vectors);
        }
        for v in &mut vectors {
            normalize(v);
        }
        Ok(vectors)
    }
}

/// Puts a batch's embeddings back in input order by their `index` (servers may answer in any
/// order), checking there is exactly one per input, none empty and all finite.
fn in_input_order(data: Vec<Embedding>, inputs: usize) -> Result<Vec<Vec<f32>>, String> {
    if data.len() != inputs {
        return Err(format!("{} embeddings for {inputs} inputs", data.len()));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for (position, item) in data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let Some(slot) = slots.get_mut(index) else {
            return Err(format!("embedding index {index} for {inputs} inputs"));
        };
        if slot.is_some() {
            return Err(format!("embedding index {index} appears twice"));
        }
        if item.embedding.is_empty() {
            return Err(format!("embedding {index} is empty"));
        }
        if item.embedding.iter().any(|x| !x.is_finite()) {
            return Err(format!("embedding {index} has values that are not finite"));
        }
        *slot = Some(item.embedding);
    }
    // Every slot is filled: as many items as slots, no index twice.
    Ok(slots.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fake_openai::{Behaviour, FakeOpenAi};

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("text number {i}")).collect()
    }

    fn embedder(fake: &FakeOpenAi) -> OpenAiEmbedder {
        OpenAiEmbedder::new(
            &fake.base_url,
            "fake-embed",
            None,
            Duration::from_secs(5),
            crate::llm::DEFAULT_MAX_RETRIES,
        )
        .unwrap()
    }

    fn item(index: Option<usize>, embedding: Vec<f32>) -> Embedding {
        Embedding { index, embedding }
    }

    #[test]
    fn reorders_by_index_and_rejects_bad_sets() {
        let data = vec![item(Some(1), vec![1.0]), item(Some(0), vec![0.0, 1.0])];
        assert_eq!(
            in_input_order(data, 2).unwrap(),
            vec![vec![0.0, 1.0], vec![1.0]]
        );
        let data = vec![item(None, vec![1.0]), item(None, vec![2.0])];
        assert_eq!(in_input_order(data, 2).unwrap(), vec![vec![1.0], vec![2.0]]);
        let twice = vec![item(Some(0), vec![1.0]), item(Some(0), vec![2.0])];
        assert_eq!(
            in_input_order(twice, 2).unwrap_err(),
            "embedding index 0 appears twice"
        );
        let beyond = vec![item(Some(5), vec![1.0])];
        assert_eq!(
            in_input_order(beyond, 1).unwrap_err(),
            "embedding index 5 for 1 inputs"
        );
        assert_eq!(
            in_input_order(vec![item(Some(0), vec![f32::NAN])], 1).unwrap_err(),
            "embedding 0 has values that are not finite"
        );
    }

    #[tokio::test]
    async fn batches_150_inputs_into_3_requests_of_unit_vectors() {
        let fake = FakeOpenAi::start(Behaviour::Answer).await;
        let embedder = embedder(&fake);
        assert_eq!(embedder.id(), "openai:fake-embed");
        let vectors = embedder
            .embed(&texts(150), Purpose::Document)
            .await
            .unwrap();
        assert_eq!(vectors.len(), 150);
        for v in &vectors {
            assert_eq!(v.len(), 16);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        let sizes: Vec<usize> = fake
            .requests()
            .iter()
            .map(|r| {
                assert_eq!(r["path"], "/v1/embeddings");
                assert_eq!(r["body"]["model"], "fake-embed");
                r["body"]["input"].as_array().unwrap().len()
            })
            .collect();
        assert_eq!(sizes, [64, 64, 22]);
        // Deterministic: the same text, alone or in a batch, gets the same vector.
        let again = embedder
            .embed(&[texts(150)[100].clone()], Purpose::Query)
            .await
            .unwrap();
        assert_eq!(again[0], vectors[100]);
    }

    #[tokio::test]
    async fn shuffled_answers_are_put_back_in_input_order() {
        let fake = FakeOpenAi::start(Behaviour::Answer).await;
        let inputs = texts(10);
        let in_order = embedder(&fake)
            .embed(&inputs, Purpose::Document)
            .await
            .unwrap();
        fake.set_behaviour(Behaviour::Shuffled);
        let shuffled = embedder(&fake)
            .embed(&inputs, Purpose::Document)
            .await
            .unwrap();
        assert_eq!(in_order, shuffled);
        assert_ne!(in_order[0], in_order[1]);
    }

    #[tokio::test]
    async fn a_missing_embedding_is_an_error() {
        let fake = FakeOpenAi::start(Behaviour::MissingOne).await;
        let err = embedder(&fake)
            .embed(&texts(3), Purpose::Document)
            .await
            .unwrap_err();
        let SearchError::Embed { message, .. } = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("2 embeddings for 3 inputs"), "{message}");
        assert!(message.contains(&fake.base_url), "{message}");
    }

    #[tokio::test]
    async fn server_failures_are_embed_errors_and_retried() {
        let fake = FakeOpenAi::start(Behaviour::FailThenAnswer(1)).await;
        let vectors = embedder(&fake)
            .embed(&texts(2), Purpose::Document)
            .await
            .unwrap();
        assert_eq!(vectors.len(), 2);
        assert_eq!(fake.requests().len(), 2);

        fake.set_behaviour(Behaviour::Garbage);
        let err = embedder(&fake)
            .embed(&texts(2), Purpose::Document)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SearchError::Embed { message: m, .. } if m.contains("not an embeddings list")),
            "{err}"
        );
        assert!(
            embedder(&fake)
                .embed(&[], Purpose::Document)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

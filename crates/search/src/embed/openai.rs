//! `openai:MODEL`: embeddings from any OpenAI-compatible `/v1/embeddings`.

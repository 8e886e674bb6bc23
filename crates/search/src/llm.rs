//! The client for an OpenAI-compatible chat completions API (answers for `/api/rag`).

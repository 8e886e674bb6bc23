//! `/api/search`, `/api/search/{index}`, its documents and `/api/rag/{index}`, for the indexes
//! of brigade.toml (listing indexes and the document routes for superusers only).

use serde_json::{Map, Value, json};

use brigade_search::query::MAX_QUERY_CHARS;

use super::op::{Access, op, path_item, path_param, schema_ref, text_query};

/// Adds the search routes; `indexes` are the ones the reader may see.
pub(super) fn add(
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
    indexes: &[String],
    superuser: bool,
) {
    add_schemas(schemas);
    if superuser {
        paths.insert("/api/search".into(), path_item([("get",
            op("search", "list_indexes", "The search indexes with their documents and ingest state").access(Access::Admin)
                .ok(200, "The indexes", json!({"type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": schema_ref("SearchIndex")}}}))
                .build())]));
    }
    if indexes.is_empty() {
        return;
    }
    let index = || {
        let mut p = path_param("index", "A search index of brigade.toml");
        p["schema"] = json!({"type": "string", "enum": indexes});
        p
    };
    paths.insert("/api/search/{index}".into(), path_item([("get",
        op("search", "search", "Search an index by keywords, meaning or both; hits spread over documents").access(Access::Optional)
            .param(index())
            .param(json!({"name": "q", "in": "query", "required": true, "schema": text_query(MAX_QUERY_CHARS)}))
            .query("k", "Hits to return", json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 10}))
            .query("mode", "How to rank", json!({"type": "string", "enum": ["hybrid", "vector", "keyword"], "default": "hybrid"}))
            .query("filter", "Filter on the documents (id, title, path, kind and metadata keys) or the collection's fields", json!({"type": "string"}))
            .ok(200, "Hits, best first", json!({"type": "object", "required": ["hits"],
                "properties": {"hits": {"type": "array", "items": schema_ref("SearchHit")}}}))
            .error(403, "The followed collection's list rule refused the caller")
            .error(404, "Unknown index")
            .error(502, "The embedder failed")
            .build())]));
    if superuser {
        paths.insert("/api/search/{index}/documents".into(), path_item([
            ("get", super::op::paging(
                op("search", "list_documents", "The index's documents").access(Access::Admin).param(index()), 500)
                .ok(200, "A page of documents", json!({"type": "object", "required": ["items", "page", "per_page", "total_items"],
                    "properties": {"items": {"type": "array", "items": {"type": "object"}},
                        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total_items": {"type": "integer"}}}))
                .error(404, "Unknown index").build()),
            ("post", op("search", "ingest_documents", "Ingest documents; unchanged ones are skipped").access(Access::Admin)
                .param(index())
                .body(json!({"oneOf": [
                    schema_ref("NewDocument"),
                    {"type": "array", "minItems": 1, "maxItems": 1000, "items": schema_ref("NewDocument")},
                    {"type": "object", "required": ["documents"], "properties": {
                        "documents": {"type": "array", "minItems": 1, "maxItems": 1000, "items": schema_ref("NewDocument")}}}
                ]}), true)
                .ok(201, "At least one document was indexed", schema_ref("DocumentsIngested"))
                .ok(200, "Every document was unchanged", schema_ref("DocumentsIngested"))
                .error(404, "Unknown index")
                .error(422, "A document cannot be parsed")
                .error(502, "The embedder failed")
                .build()),
        ]));
        paths.insert(
            "/api/search/{index}/documents/{id}".into(),
            path_item([(
                "delete",
                op(
                    "search",
                    "delete_document",
                    "Delete a document and its chunks",
                )
                .access(Access::Admin)
                .param(index())
                .param(path_param("id", "The document's id (may contain `/`)"))
                .empty(204, "Deleted")
                .error(404, "Unknown index or document")
                .build(),
            )]),
        );
    }
    paths.insert("/api/rag/{index}".into(), path_item([("post",
        op("search", "answer", "Answer a question from the index, with its sources").access(Access::Optional)
            .param(index())
            .body(json!({"type": "object", "required": ["question"], "additionalProperties": false, "properties": {
                "question": text_query(MAX_QUERY_CHARS),
                "k": {"type": ["integer", "null"], "minimum": 1, "maximum": 20}}}), true)
            .ok(200, "The answer", schema_ref("RagAnswer"))
            .error(403, "The followed collection's list rule refused the caller")
            .error(404, "Unknown index")
            .error(502, "The language model or the embedder failed")
            .error(504, "The language model timed out")
            .build())]));
}

fn add_schemas(schemas: &mut Map<String, Value>) {
    schemas.insert("SearchHit".into(), json!({"type": "object", "required": ["id", "score", "text", "source", "highlights"], "properties": {
        "id": {"type": "string", "description": "document_id#chunk"}, "score": {"type": "number"}, "text": {"type": "string"},
        "source": {"type": "object", "required": ["document_id", "title", "path_or_url", "chunk"], "properties": {
            "document_id": {"type": "string"}, "title": {"type": "string"}, "path_or_url": {"type": "string"}, "chunk": {"type": "integer"}}},
        "highlights": {"type": "array", "items": {"type": "string"}},
        "heading": {"type": "string"}}}));
    schemas.insert("RagAnswer".into(), json!({"type": "object", "required": ["answer", "mode", "sources", "latency_ms"], "properties": {
        "answer": {"type": "string"}, "mode": {"type": "string", "enum": ["generative", "extractive"]},
        "sources": {"type": "array", "items": {"type": "object", "required": ["document_id", "title", "path_or_url", "snippet", "score"], "properties": {
            "document_id": {"type": "string"}, "title": {"type": "string"}, "path_or_url": {"type": "string"},
            "snippet": {"type": "string"}, "score": {"type": "number"}}}},
        "model": {"type": "string"},
        "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}}},
        "latency_ms": {"type": "integer"}, "cached": {"type": "boolean"}}}));
    // Exactly one of `text` and `content_base64` is a string (the other absent or null), and
    // a PDF comes as `content_base64`.
    let text = json!({"required": ["text"], "properties": {
        "text": {"type": "string"}, "content_base64": {"type": "null"},
        "format": {"not": {"const": "pdf"}}}});
    let content = json!({"required": ["content_base64"], "properties": {
        "content_base64": {"type": "string", "description": "Standard base64 with padding"},
        "text": {"type": "null"}}});
    schemas.insert("NewDocument".into(), json!({"type": "object", "additionalProperties": false,
        "oneOf": [text, content],
        "description": "`text`, or `content_base64` (required for a PDF)", "properties": {
        "id": {"type": ["string", "null"], "minLength": 1, "maxLength": 512}, "title": {"type": ["string", "null"]},
        "text": {"type": ["string", "null"]}, "content_base64": {"type": ["string", "null"]},
        "format": {"type": ["string", "null"], "enum": ["markdown", "md", "text", "txt", "html", "htm", "pdf", null],
            "description": "`md`, `txt` and `htm` are the same as `markdown`, `text` and `html`; markdown when absent"},
        "path_or_url": {"type": ["string", "null"]}, "url": {"type": ["string", "null"]},
        "metadata": {"type": ["object", "null"]}}}));
    schemas.insert("SearchIndex".into(), json!({"type": "object", "required": ["name", "source", "embedder", "documents"], "properties": {
        "name": {"type": "string"}, "source": {"type": "string", "enum": ["path", "collection", "api"]},
        "path": {"type": "string"}, "collection": {"type": "string"}, "embedder": {"type": "string"},
        "chunk": {"type": "object"}, "ranking": {"type": "object"}, "documents": {"type": "integer"},
        "version": {"type": "integer"}, "ingest": {"type": "object"}}}));
}

//! The chat client against [`crate::fake_openai`] over real HTTP.

use std::time::{Duration, Instant};

use super::*;
use crate::fake_openai::{Behaviour, FakeOpenAi, unused_base_url};

const KEY: &str = "sk-test-secret-0123456789";

fn client(base_url: &str, timeout: Duration) -> LlmClient {
    LlmClient::new(LlmConfig {
        timeout,
        ..LlmConfig::new(base_url, "fake-chat")
    })
    .unwrap()
}

fn question() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("Answer from the numbered sources only, citing them."),
        ChatMessage::user(
            "Sources:\n[1] Brigade stores records in SQLite or PostgreSQL and serves them over HTTP with realtime updates.\n[2] Something else.\n\nQuestion: where are records stored?",
        ),
    ]
}

fn llm_message(err: SearchError) -> String {
    match err {
        SearchError::Llm { message, .. } => message,
        other => panic!("expected SearchError::Llm, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_with_the_servers_usage_at_temperature_0() {
    let fake = FakeOpenAi::start(Behaviour::Answer).await;
    let completion = client(&fake.base_url, Duration::from_secs(5))
        .chat(&question(), 100)
        .await
        .unwrap();
    assert_eq!(
        completion.text,
        "According to [1], Brigade stores records in SQLite or PostgreSQL and serves th"
    );
    assert_eq!(completion.model, "fake-chat");
    // Whitespace-separated words, as the fake counts them.
    assert_eq!(completion.prompt_tokens, 8 + 25);
    assert_eq!(completion.completion_tokens, 13);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["path"], "/v1/chat/completions");
    assert_eq!(requests[0]["authorization"], serde_json::Value::Null);
    let body = &requests[0]["body"];
    assert_eq!(body["model"], "fake-chat");
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(body["messages"][1]["role"], "user");
}

#[tokio::test]
async fn base_url_works_with_or_without_a_trailing_slash() {
    let fake = FakeOpenAi::start(Behaviour::Answer).await;
    let with_slash = format!("{}/", fake.base_url);
    for base in [fake.base_url.as_str(), with_slash.as_str()] {
        client(base, Duration::from_secs(5))
            .chat(&question(), 10)
            .await
            .unwrap();
    }
    let paths: Vec<_> = fake.requests().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(paths, ["/v1/chat/completions", "/v1/chat/completions"]);
}

#[tokio::test]
async fn retries_after_two_500s_then_answers() {
    let fake = FakeOpenAi::start(Behaviour::FailThenAnswer(2)).await;
    let completion = client(&fake.base_url, Duration::from_secs(5))
        .chat(&question(), 100)
        .await
        .unwrap();
    assert!(completion.text.starts_with("According to [1]"));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let fake = FakeOpenAi::start(Behaviour::FailThenAnswer(3)).await;
    let message = llm_message(
        client(&fake.base_url, Duration::from_secs(5))
            .chat(&question(), 100)
            .await
            .unwrap_err(),
    );
    assert!(message.contains("HTTP 500 (after 3 attempts)"), "{message}");
    assert!(message.contains("on purpose"), "{message}");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let fake = FakeOpenAi::start(Behaviour::RateLimitedThenAnswer(1)).await;
    let started = Instant::now();
    client(&fake.base_url, Duration::from_secs(5))
        .chat(&question(), 100)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_slow_model_times_out_within_the_whole_call_bound() {
    let fake = FakeOpenAi::start(Behaviour::Slow(Duration::from_secs(3))).await;
    let started = Instant::now();
    let err = client(&fake.base_url, Duration::from_millis(300))
        .chat(&question(), 100)
        .await
        .unwrap_err();
    assert!(matches!(err, SearchError::LlmTimeout(1)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn garbage_is_an_error_naming_the_server() {
    let fake = FakeOpenAi::start(Behaviour::Garbage).await;
    let message = llm_message(
        client(&fake.base_url, Duration::from_secs(5))
            .chat(&question(), 100)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        format!(
            "the model at {} answered something that is not a chat completion: a text/plain body that is not JSON (\"<html>oops\")",
            fake.base_url
        )
    );
    assert_eq!(fake.requests().len(), 1, "garbage is not retried");
}

#[tokio::test]
async fn a_model_that_is_down_fails_after_retries_in_bounded_time() {
    let base_url = unused_base_url();
    let started = Instant::now();
    let message = llm_message(
        client(&base_url, Duration::from_secs(10))
            .chat(&question(), 100)
            .await
            .unwrap_err(),
    );
    assert!(
        message.starts_with(&format!(
            "the model at {base_url} is unreachable (after 3 attempts)"
        )),
        "{message}"
    );
    // Backoff 200 ms then 400 ms, plus jitter.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let fake = FakeOpenAi::start(Behaviour::Answer).await;
    let base_url = fake.base_url.clone();
    fake.stop();
    let err = client(&base_url, Duration::from_secs(10))
        .chat(&question(), 100)
        .await
        .unwrap_err();
    assert!(llm_message(err).contains("is unreachable"));
}

#[tokio::test]
async fn the_api_key_is_sent_as_bearer_and_kept_out_of_errors() {
    let fake = FakeOpenAi::start(Behaviour::Answer).await;
    let config = LlmConfig {
        api_key: Some(KEY.to_string()),
        ..LlmConfig::new(&fake.base_url, "fake-chat")
    };
    assert!(!format!("{config:?}").contains(KEY));
    let llm = LlmClient::new(config).unwrap();
    assert!(!format!("{llm:?}").contains(KEY));
    llm.chat(&question(), 100).await.unwrap();
    assert_eq!(fake.requests()[0]["authorization"], format!("Bearer {KEY}"));

    // The fake echoes the key in its 401 message, as some servers do.
    fake.set_behaviour(Behaviour::Status(401));
    let message = llm_message(llm.chat(&question(), 100).await.unwrap_err());
    assert!(!message.contains(KEY), "{message}");
    assert!(
        message.contains("answered HTTP 401: Incorrect API key provided: ***."),
        "{message}"
    );
    assert!(message.contains("check the API key"), "{message}");
    assert_eq!(fake.requests().len(), 2, "a 401 is not retried");

    fake.set_behaviour(Behaviour::Garbage);
    let message = llm_message(llm.chat(&question(), 100).await.unwrap_err());
    assert!(!message.contains(KEY), "{message}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = FakeOpenAi::start(Behaviour::Status(400)).await;
    let message = llm_message(
        client(&fake.base_url, Duration::from_secs(5))
            .chat(&question(), 100)
            .await
            .unwrap_err(),
    );
    assert!(
        message.ends_with("answered HTTP 400: The fake server answers 400 Bad Request on purpose."),
        "{message}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn bad_configurations_are_rejected() {
    let err = LlmClient::new(LlmConfig::new("localhost:11434", "m")).unwrap_err();
    assert!(llm_message(err).contains("base_url"));
    let err = LlmClient::new(LlmConfig::new("http://127.0.0.1:1/v1", " ")).unwrap_err();
    assert!(llm_message(err).contains("no model"));
}

#[test]
fn completions_without_usage_are_estimated_and_empty_ones_rejected() {
    let llm = client("http://127.0.0.1:1/v1", Duration::from_secs(1));
    let parse = |json: &str| serde_json::from_str::<ChatResponse>(json).unwrap();
    let messages = [ChatMessage::user("12345678")];
    let completion = llm
        .completion(
            parse(r#"{"choices": [{"message": {"role": "assistant", "content": "abcde"}}]}"#),
            &messages,
        )
        .unwrap();
    assert_eq!(completion.model, "fake-chat");
    assert_eq!(
        (completion.prompt_tokens, completion.completion_tokens),
        (2, 2)
    );

    let err = llm
        .completion(parse(r#"{"choices": []}"#), &messages)
        .unwrap_err();
    assert!(llm_message(err).ends_with("not a chat completion: `choices` is empty"));
    let err = llm
        .completion(
            parse(r#"{"choices": [{"message": {"content": null}}]}"#),
            &messages,
        )
        .unwrap_err();
    assert!(llm_message(err).contains("`choices[0].message.content` is missing"));
}

#[tokio::test]
async fn json_that_is_not_a_completion_is_an_error() {
    // The fake's `/v1/embeddings` answers valid JSON of another shape.
    let fake = FakeOpenAi::start(Behaviour::Answer).await;
    let endpoint = Endpoint::new(&fake.base_url, None, Duration::from_secs(5), 0).unwrap();
    let failure = endpoint
        .post::<ChatResponse>("embeddings", &json!({ "model": "m", "input": "x" }))
        .await
        .unwrap_err();
    let message = failure.describe("the model", "a chat completion", Duration::from_secs(5));
    assert!(
        message.starts_with(
            "the model answered something that is not a chat completion: missing field `choices`"
        ),
        "{message}"
    );
}

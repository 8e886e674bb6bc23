use serde_json::Value;

use super::*;

const REFERENCE: &str = include_str!("../../../assets/builtin/reference.json");

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

#[test]
fn vocabulary_and_table_agree() {
    assert_eq!(VOCAB.lines().count(), VOCAB_SIZE);
    assert_eq!(&TABLE[..4], b"BSE1");
    let n = u32::from_le_bytes(TABLE[4..8].try_into().unwrap()) as usize;
    let d = u32::from_le_bytes(TABLE[8..12].try_into().unwrap()) as usize;
    assert_eq!((n, d), (VOCAB_SIZE, DIMS));
    assert_eq!(reference()["dims"], DIMS);
}

#[test]
fn tokenizer_matches_hugging_face() {
    let tokenizer = &MODEL.tokenizer;
    for case in reference()["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| u32::try_from(id.as_u64().unwrap()).unwrap())
            .collect();
        let mut ids = Vec::new();
        tokenizer.tokenize(text, |id| ids.push(id));
        assert_eq!(ids, expected, "tokens of {text:?}");
    }
}

#[test]
fn vectors_match_the_python_prototype() {
    for case in reference()["embeddings"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<f32> = case["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos = dot(&embed_one(text), &expected);
        assert!(cos > 0.999, "cosine {cos} for {text:?}");
    }
}

#[test]
fn vectors_are_deterministic_unit_and_sized() {
    let text = "Point-in-time recovery replays the write-ahead log up to a target.";
    let a = embed_one(text);
    assert_eq!(a.len(), DIMS);
    assert_eq!(a, embed_one(text));
    assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
}

#[test]
fn odd_inputs_do_not_panic() {
    let long = "autovacuum tuning for very large tables ".repeat(5_000);
    let word = "x".repeat(10_000);
    for text in [
        "",
        "   \n\t ",
        "🙂👍🏽🚀",
        "\u{0}\u{fffd}\u{200b}",
        &long,
        &word,
    ] {
        let v = embed_one(text);
        assert_eq!(v.len(), DIMS);
        let norm = dot(&v, &v);
        assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-4, "{norm}");
    }
    assert!(embed_one("").iter().all(|x| *x == 0.0));
    assert!((dot(&embed_one(&long), &embed_one(&long)) - 1.0).abs() < 1e-4);
}

#[test]
fn paraphrase_is_closer_than_unrelated_text() {
    let query = embed_one("How do I make a backup copy of my database?");
    let paraphrase = embed_one("pg_dump is a utility for backing up a PostgreSQL database.");
    let unrelated = embed_one("The geometric types represent two-dimensional spatial objects.");
    assert!(dot(&query, &paraphrase) > dot(&query, &unrelated) + 0.05);

    let query = embed_one("Why is my query slow and how can I see what plan it uses?");
    let related = embed_one("EXPLAIN shows the execution plan the planner generates.");
    let unrelated = embed_one("Large objects are stored in the pg_largeobject catalog.");
    assert!(dot(&query, &related) > dot(&query, &unrelated));
}

#[tokio::test]
async fn embedder_returns_one_vector_per_text() {
    let texts = vec!["vacuum".to_owned(), String::new(), "index".to_owned()];
    let out = Builtin.embed(&texts, Purpose::Query).await.unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], embed_one("vacuum"));
    assert_eq!(Builtin.id(), "builtin-static-v1");
}

/// Release-build throughput: `cargo test --release -p brigade-search builtin_throughput --
/// --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn builtin_throughput() {
    let base = "Continuous archiving and point-in-time recovery: PostgreSQL maintains a \
        write-ahead log (WAL) in the pg_wal/ subdirectory of the cluster's data directory. \
        The log records every change made to the database's data files. This log exists \
        primarily for crash-safety purposes: if the system crashes, the database can be \
        restored to consistency by replaying the log entries made since the last checkpoint. \
        However, the existence of the log makes it possible to use a third strategy for \
        backing up databases: we can combine a file-system-level backup with backup of the \
        WAL files. If recovery is needed, we restore the file system backup and then replay \
        from the backed-up WAL files to bring the system to a current state. This approach \
        is more complex to administer than either of the previous approaches, but it has \
        some significant benefits: we do not need a perfectly consistent file system backup \
        as the starting point, since any internal inconsistency in the backup will be \
        corrected by log replay; we do not need a file system snapshot capability, just \
        tar or a similar archiving tool; since we can combine an indefinitely long sequence \
        of WAL files for replay, continuous backup can be achieved simply by continuing to \
        archive the WAL files, which is particularly valuable for large databases, where it \
        might not be convenient to take a full backup frequently; it is not necessary to \
        replay the WAL entries all the way to the end. We could stop the replay at any \
        point and have a consistent snapshot of the database as it was at that time.";
    let texts: Vec<String> = (0..2000).map(|i| format!("{base} ({i})")).collect();
    let words = base.split_whitespace().count();
    let mut tokens = 0;
    MODEL.tokenizer.tokenize(base, |_| tokens += 1);
    let _ = embed_one("warm up");
    let start = std::time::Instant::now();
    let mut sum = 0.0;
    for t in &texts {
        sum += embed_one(t)[0];
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} chunks of {words} words / {tokens} tokens in {secs:.3}s: {:.0} chunks/s ({sum})",
        texts.len(),
        texts.len() as f64 / secs
    );
}

//! Chunking by structure: sections stay apart, whole paragraphs are packed up to a token
//! limit, an over-long paragraph is split at sentences (then words), and consecutive chunks
//! of a section overlap.
//!
//! # Tokens
//! [`count_tokens`] estimates BERT WordPiece counts without a vocabulary: every punctuation
//! or symbol character is one token (WordPiece splits them off), and each run of letters or
//! digits costs by its length (`Run::cost`). On the PostgreSQL manual's 9,264 chunks it is
//! 0.2% off the all-MiniLM-L6-v2 tokenizer in total and within 30% on 98.6% of chunks; it
//! undercounts runs of rare names (a contributors list: 300 estimated, 494 real).
//!
//! # Packing
//! Each chunk is a contiguous slice of its section's text (trimmed), so its text is exactly
//! what the document says, separators included. Packing is greedy, so a chunk only ends
//! where the next paragraph (or sentence) would not fit: a small trailing fragment is left
//! on its own only when it could not be merged into the previous chunk. The overlap is cut
//! back when the next paragraph would not fit beside it. A run without word boundaries
//! longer than the limit (a base64 blob) is cut every `max_tokens` characters, which no
//! estimate counts as more than `max_tokens` tokens: no chunk is ever over the limit.
//!
//! We pack ourselves rather than use `text-splitter` 0.33: with this same token count, on
//! the same sections, it gave chunks of the same sizes (mean 182 vs 187 tokens, as many
//! under 60), so it would add no quality for its cost: `icu_segmenter` and its data,
//! `strum` 0.28, `itertools`, `auto_enums` and a dozen more crates to build.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

use crate::document::Parsed;

/// `chunk = { max_tokens, overlap }` of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// The most tokens (as [`count_tokens`] counts them) in one chunk.
    pub max_tokens: usize,
    /// About how many tokens of the previous chunk each chunk of a section repeats.
    pub overlap: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 300,
            overlap: 40,
        }
    }
}

/// The smallest `max_tokens` accepted: less than a sentence leaves nothing to retrieve.
pub const MIN_MAX_TOKENS: usize = 16;

impl ChunkConfig {
    /// Checks the limits, for the config loader.
    ///
    /// # Errors
    /// A message naming the field when `max_tokens` is below [`MIN_MAX_TOKENS`] or `overlap`
    /// is not below half of `max_tokens`.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens < MIN_MAX_TOKENS {
            return Err(format!(
                "max_tokens must be at least {MIN_MAX_TOKENS}, got {}",
                self.max_tokens
            ));
        }
        if self.overlap * 2 >= self.max_tokens {
            return Err(format!(
                "overlap must be less than half of max_tokens ({}), got {}",
                self.max_tokens, self.overlap
            ));
        }
        Ok(())
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// 0-based position in the document.
    pub ordinal: usize,
    /// The heading path, joined with ` > ` (empty when none).
    pub heading: String,
    /// The chunk's text: a slice of one section, never empty.
    pub text: String,
    /// [`count_tokens`] of `text`, at most `max_tokens`.
    pub tokens: usize,
}

/// Splits `doc` into chunks of at most `config.max_tokens` tokens, in reading order.
///
/// An invalid config is clamped (`max_tokens` at least 1, `overlap` at most half of it)
/// rather than refused; [`ChunkConfig::validate`] is where it is refused.
pub fn chunk(doc: &Parsed, config: &ChunkConfig) -> Vec<Chunk> {
    let max = config.max_tokens.max(1);
    let overlap = config.overlap.min(max / 2);
    let mut out = Vec::new();
    for section in &doc.sections {
        let heading = section.headings.join(" > ");
        for range in chunk_section(&section.text, max, overlap) {
            let text = section.text[range].trim();
            if text.is_empty() {
                continue;
            }
            out.push(Chunk {
                ordinal: out.len(),
                heading: heading.clone(),
                text: text.to_string(),
                tokens: count_tokens(text),
            });
        }
    }
    out
}

/// A slice of a section's text that fits in one chunk, with its cost (tokens ×100).
#[derive(Debug, Clone)]
struct Piece {
    range: Range<usize>,
    cost: usize,
}

/// The byte ranges of one section's chunks.
fn chunk_section(text: &str, max: usize, overlap: usize) -> Vec<Range<usize>> {
    let max_cost = max * 100;
    let mut chunks = Vec::new();
    let mut current: Option<Piece> = None;
    for piece in pieces(text, max_cost) {
        if let Some(c) = &mut current {
            let cost = joined_cost(text, c, &piece);
            if cost <= max_cost {
                c.range.end = piece.range.end;
                c.cost = cost;
                continue;
            }
        }
        let mut next = piece.clone();
        if let Some(prev) = current.take() {
            let budget = (overlap * 100)
                .min(max_cost - piece.cost)
                .min(prev.cost / 2);
            let start = overlap_start(text, &prev.range, budget);
            let tail = Piece {
                range: start..prev.range.end,
                cost: cost(&text[start..prev.range.end]),
            };
            let cost = joined_cost(text, &tail, &piece);
            if cost <= max_cost {
                next = Piece {
                    range: start..piece.range.end,
                    cost,
                };
            }
            chunks.push(prev.range);
        }
        current = Some(next);
    }
    chunks.extend(current.map(|c| c.range));
    chunks
}

/// The cost of `a` through `b` (`b` follows `a`, with only whitespace between): the sum,
/// unless they cut a run of letters in two, which costs differently whole.
fn joined_cost(text: &str, a: &Piece, b: &Piece) -> usize {
    let cuts_run = a.range.end == b.range.start
        && text[..a.range.end].chars().next_back().is_some_and(in_run)
        && text[b.range.start..].chars().next().is_some_and(in_run);
    if cuts_run {
        cost(&text[a.range.start..b.range.end])
    } else {
        a.cost + b.cost
    }
}

/// Whole paragraphs that fit in `max_cost`; else the sentences of those that do not; else
/// the words of those; else `max / 100`-character cuts of a longer word.
fn pieces(text: &str, max_cost: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut offset = 0;
    for paragraph in text.split("\n\n") {
        let start = offset;
        offset += paragraph.len() + 2;
        split(paragraph, start, max_cost, 0, &mut out);
    }
    out
}

/// Adds `part` (at `start` in the section) as one piece if it fits, else its parts of the
/// next finer `level`: sentences, words, characters.
fn split(part: &str, start: usize, max_cost: usize, level: u8, out: &mut Vec<Piece>) {
    let cost = cost(part);
    if cost == 0 {
        return;
    }
    if cost <= max_cost {
        let trimmed = part.trim_end();
        out.push(Piece {
            range: start..start + trimmed.len(),
            cost,
        });
        return;
    }
    match level {
        0 => part
            .split_sentence_bound_indices()
            .for_each(|(at, s)| split(s, start + at, max_cost, 1, out)),
        1 => part
            .split_word_bound_indices()
            .for_each(|(at, w)| split(w, start + at, max_cost, 2, out)),
        _ => {
            // A character is at most one token, so `max` characters always fit.
            let mut cut = 0;
            for (chars, (at, _)) in part.char_indices().enumerate() {
                if chars > 0 && chars % (max_cost / 100).max(1) == 0 {
                    split(&part[cut..at], start + cut, max_cost, 2, out);
                    cut = at;
                }
            }
            split(&part[cut..], start + cut, max_cost, 2, out);
        }
    }
}

/// Where the overlap taken from the end of `prev` starts: the earliest sentence start whose
/// tail costs at most `budget` if that tail has at least half of it, else the earliest word
/// boundary within the budget.
fn overlap_start(text: &str, prev: &Range<usize>, budget: usize) -> usize {
    let chunk = &text[prev.clone()];
    let mut words_start = chunk.len();
    let mut spent = 0;
    for (at, word) in chunk.split_word_bound_indices().rev() {
        let c = cost(word);
        if spent + c > budget {
            break;
        }
        spent += c;
        if c > 0 {
            words_start = at;
        }
    }
    if spent == 0 {
        return prev.end;
    }
    let tail = &chunk[words_start..];
    let sentence_start = tail
        .split_sentence_bound_indices()
        .map(|(at, _)| at)
        .find(|&at| at > 0 && cost(&tail[at..]) * 2 >= budget);
    prev.start + words_start + sentence_start.unwrap_or(0)
}

/// Estimated BERT WordPiece tokens in `text` (see the module docs).
///
/// Never more than the number of non-whitespace characters, so a run of `n` characters
/// always fits in `n` tokens.
pub fn count_tokens(text: &str) -> usize {
    cost(text).div_ceil(100)
}

/// [`count_tokens`] ×100, unrounded, so costs of pieces add up.
fn cost(text: &str) -> usize {
    let mut hundredths = 0;
    let mut run = Run::default();
    for c in text.chars() {
        if in_run(c) {
            run.len += 1;
            if c.is_numeric() {
                run.digits = true;
            } else {
                run.letters = true;
            }
            continue;
        }
        hundredths += run.cost();
        run = Run::default();
        if !c.is_whitespace() {
            hundredths += 100;
        }
    }
    hundredths + run.cost()
}

/// Letters and digits that WordPiece keeps together.
fn in_run(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// A run of letters and digits, which WordPiece splits into vocabulary pieces.
#[derive(Default)]
struct Run {
    len: usize,
    letters: bool,
    digits: bool,
}

impl Run {
    /// Expected tokens ×100, fitted on the PostgreSQL manual with the all-MiniLM-L6-v2
    /// (bert-base-uncased) vocabulary: common words are one piece, long words two, and
    /// identifiers or hex strings about three characters a piece; numbers about two digits a
    /// piece; letters mixed with digits (`int4`, `md5`) about one piece per two characters.
    /// Never more than `n` ×100.
    fn cost(&self) -> usize {
        let n = self.len;
        match (self.letters, self.digits) {
            (false, false) => 0,
            (true, false) => match n {
                0..=2 => 100,
                3..=5 => 107,
                6..=7 => 118,
                8..=9 => 128,
                10..=13 => 170,
                14 => 230,
                15..=20 => 300,
                // Hex strings and run-together identifiers.
                _ => n * 100 / 4,
            },
            (false, true) => match n {
                0..=2 => 100,
                3 => 127,
                4 => 160,
                _ => n * 50,
            },
            (true, true) => 100 + n * 45,
        }
    }
}

/// CJK ideographs and kana: WordPiece makes each its own token.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Section;

    fn doc(sections: &[(&[&str], String)]) -> Parsed {
        Parsed {
            title: None,
            sections: sections
                .iter()
                .map(|(headings, text)| Section {
                    headings: headings.iter().map(ToString::to_string).collect(),
                    text: text.clone(),
                })
                .collect(),
            ..Parsed::default()
        }
    }

    fn sentences(n: usize, tag: &str) -> String {
        (0..n)
            .map(|i| format!("Sentence {tag}{i} talks about indexes and queries."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn counts_tokens_like_wordpiece() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("  \n\t "), 0);
        // Counts by the all-MiniLM-L6-v2 (bert-base-uncased) tokenizer.
        for (text, wordpiece) in [
            ("The index, (b-tree)!", 9),
            ("pg_stat_activity", 5),
            ("internationalization", 2),
            ("12345678", 5),
            ("数据库", 3),
            (
                "CREATE INDEX CONCURRENTLY builds the index without locking out writes.",
                11,
            ),
        ] {
            let estimate = count_tokens(text);
            assert!(
                estimate.abs_diff(wordpiece) <= (wordpiece / 4).max(1),
                "{text}: {estimate}"
            );
        }
        // Never more than one token a character.
        assert_eq!(count_tokens("a"), 1);
        assert!(count_tokens(&"x9".repeat(500)) <= 1000);
    }

    #[test]
    fn validate_checks_the_limits() {
        assert!(ChunkConfig::default().validate().is_ok());
        let bad = |max_tokens, overlap| {
            ChunkConfig {
                max_tokens,
                overlap,
            }
            .validate()
        };
        assert!(bad(15, 0).unwrap_err().contains("max_tokens"));
        assert!(bad(100, 50).unwrap_err().contains("overlap"));
        assert!(bad(100, 49).is_ok());
    }

    #[test]
    fn whole_paragraphs_are_packed_and_sections_never_mixed() {
        // Each paragraph is 3 sentences of 9 tokens: 27 tokens.
        let paragraphs = |tag: &str| {
            (0..5)
                .map(|i| sentences(3, &format!("{tag}{i}-")))
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        let parsed = doc(&[
            (&["A"], paragraphs("a")),
            (&["A", "B"], paragraphs("b")),
            (&[], "Tiny.".to_string()),
        ]);
        // Room for two paragraphs but not three.
        let max_tokens = count_tokens(&paragraphs("a")) * 2 / 5 + 1;
        let config = ChunkConfig {
            max_tokens,
            overlap: 0,
        };
        let chunks = chunk(&parsed, &config);
        let headings: Vec<_> = chunks.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(headings, vec!["A", "A", "A", "A > B", "A > B", "A > B", ""]);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.ordinal, i);
            assert!(c.tokens <= max_tokens, "{c:?}");
            assert_eq!(c.tokens, count_tokens(&c.text));
            // Whole paragraphs: every chunk starts and ends at a paragraph's ends.
            assert!(c.text.starts_with("Sentence") || c.text == "Tiny.", "{c:?}");
            assert!(c.text.ends_with("2 talks about indexes and queries.") || c.text == "Tiny.");
        }
        assert_eq!(chunks[0].text.matches("\n\n").count(), 1);
    }

    /// The longest start of `next` that ends `prev`.
    fn overlap<'a>(prev: &str, next: &'a str) -> &'a str {
        next.char_indices()
            .map(|(at, _)| at)
            .chain([next.len()])
            .rev()
            .find(|&at| prev.ends_with(&next[..at]))
            .map_or("", |at| &next[..at])
    }

    #[test]
    fn long_paragraphs_split_at_sentences_with_overlap() {
        let parsed = doc(&[(&["Long"], sentences(60, "s"))]);
        let config = ChunkConfig {
            max_tokens: 100,
            overlap: 25,
        };
        let chunks = chunk(&parsed, &config);
        assert!(chunks.len() > 5);
        for pair in chunks.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            assert!(next.tokens <= 100 && prev.tokens <= 100);
            let shared = overlap(&prev.text, &next.text);
            assert!(
                shared.starts_with("Sentence") && shared.ends_with('.'),
                "whole sentences: {shared:?}"
            );
            assert!((12..=25).contains(&count_tokens(shared)), "{shared:?}");
        }
    }

    #[test]
    fn overlap_falls_back_to_words_inside_a_long_sentence() {
        let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        let parsed = doc(&[(&[], words.join(" "))]);
        let config = ChunkConfig {
            max_tokens: 50,
            overlap: 10,
        };
        let chunks = chunk(&parsed, &config);
        assert!(chunks.len() > 10);
        for pair in chunks.windows(2) {
            assert!(pair[1].tokens <= 50 && pair[0].tokens >= 40, "{pair:?}");
            let shared = overlap(&pair[0].text, &pair[1].text);
            assert!(shared.starts_with('w'), "{pair:?}");
            assert!((8..=10).contains(&count_tokens(shared)), "{shared:?}");
        }
    }

    #[test]
    fn an_unsplittable_run_is_cut_to_the_limit() {
        let blob = "QUJD".repeat(2_000);
        let parsed = doc(&[(&[], format!("Before.\n\n{blob}\n\nAfter."))]);
        let config = ChunkConfig {
            max_tokens: 64,
            overlap: 8,
        };
        let chunks = chunk(&parsed, &config);
        assert!(chunks.iter().all(|c| c.tokens <= 64 && !c.text.is_empty()));
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert!(joined.contains("Before.") && joined.contains("After."));
        assert!(joined.matches("QUJD").count() >= 2_000);
    }

    #[test]
    fn empty_sections_and_documents_make_no_chunks() {
        assert!(chunk(&Parsed::default(), &ChunkConfig::default()).is_empty());
        let parsed = doc(&[(&["H"], " \n\n \n".to_string())]);
        assert!(chunk(&parsed, &ChunkConfig::default()).is_empty());
    }

    /// xorshift64*: deterministic random input without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).expect("fits")
        }
    }

    #[test]
    fn random_text_never_panics_and_every_word_is_covered() {
        const PARTS: &[&str] = &[
            "the",
            "index",
            "PostgreSQL",
            "pg_stat_activity",
            "é",
            "数据库",
            "ไทยภาษา",
            ".",
            "!",
            "?",
            ",",
            "e.g.",
            "3.14",
            "—",
            "\n",
            "\n\n",
            "\n\n\n",
            " ",
            "  ",
            "\t",
            "Mr.",
            "x\u{301}",
            "🙂",
            "(",
            ")",
            "internationalization",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let mut text = String::new();
            for _ in 0..rng.below(600) {
                if rng.below(50) == 0 {
                    text.push_str(&"z".repeat(rng.below(400)));
                } else {
                    text.push_str(PARTS[rng.below(PARTS.len())]);
                }
                if rng.below(3) > 0 {
                    text.push(' ');
                }
            }
            let max = 1 + rng.below(120);
            let overlap = rng.below(max / 2 + 1);
            let ranges = chunk_section(&text, max, overlap);
            let mut covered = vec![false; text.len()];
            for range in &ranges {
                assert!(count_tokens(&text[range.clone()]) <= max, "round {round}");
                covered[range.clone()].iter_mut().for_each(|c| *c = true);
            }
            for (at, c) in text.char_indices() {
                assert!(
                    c.is_whitespace() || covered[at],
                    "round {round}: {c:?} at {at} lost"
                );
            }
            let chunks = chunk(
                &doc(&[(&["h"], text.clone())]),
                &ChunkConfig {
                    max_tokens: max,
                    overlap,
                },
            );
            assert!(
                chunks
                    .iter()
                    .all(|c| !c.text.trim().is_empty() && c.tokens <= max)
            );
        }
    }
}

//! The BERT uncased tokenizer (normaliser, pre-tokeniser and WordPiece) that the builtin
//! vectors were distilled with, written out so embedding needs no allocation per token and no
//! tokenizer JSON. It reproduces Hugging Face `tokenizers`' `BertNormalizer` (clean text, CJK
//! padding, accent stripping, lowercase), `BertPreTokenizer` and `WordPiece` (`##`
//! continuations, 100 characters at most per word); `reference.json` pins that.

use std::collections::HashMap;

use unicode_normalization::char::decompose_canonical;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// The id of `[UNK]`, emitted for a word that WordPiece cannot split.
pub(crate) const UNK: u32 = 100;
const MAX_WORD_CHARS: usize = 100;
const CONTINUATION: &str = "##";

/// A WordPiece vocabulary: word-initial pieces and `##` continuations, by id.
pub(crate) struct WordPiece {
    initial: HashMap<&'static str, u32>,
    continuation: HashMap<&'static str, u32>,
}

impl WordPiece {
    /// Reads a `vocab.txt` (one token a line, id = line number).
    pub(crate) fn new(vocab: &'static str) -> Self {
        let mut initial = HashMap::new();
        let mut continuation = HashMap::new();
        for (id, token) in (0u32..).zip(vocab.lines()) {
            match token.strip_prefix(CONTINUATION) {
                Some(rest) if !rest.is_empty() => continuation.insert(rest, id),
                _ => initial.insert(token, id),
            };
        }
        WordPiece {
            initial,
            continuation,
        }
    }

    /// Calls `emit` with the id of each token of `text`, in order.
    pub(crate) fn tokenize(&self, text: &str, mut emit: impl FnMut(u32)) {
        let mut word = String::new();
        let mut push = |c: char, word: &mut String| {
            if c.is_whitespace() {
                self.word(word, &mut emit);
            } else if is_punctuation(c) {
                self.word(word, &mut emit);
                word.push(c);
                self.word(word, &mut emit);
            } else {
                word.push(c);
            }
        };
        for c in text.chars() {
            // BertNormalizer: clean text, then pad CJK ideographs, strip accents, lowercase.
            if c == '\0' || c == '\u{fffd}' || is_control(c) {
                continue;
            }
            let chinese = is_chinese(c);
            if chinese {
                push(' ', &mut word);
            }
            decompose_canonical(c, |d| {
                if d.general_category() != GeneralCategory::NonspacingMark {
                    for l in d.to_lowercase() {
                        push(l, &mut word);
                    }
                }
            });
            if chinese {
                push(' ', &mut word);
            }
        }
        self.word(&mut word, &mut emit);
    }

    /// Greedy longest-match-first split of one pre-token; the whole word is `[UNK]` when some
    /// part of it matches nothing. Clears `word`.
    fn word(&self, word: &mut String, emit: &mut impl FnMut(u32)) {
        if word.is_empty() {
            return;
        }
        if word.chars().count() > MAX_WORD_CHARS {
            emit(UNK);
            word.clear();
            return;
        }
        let mut pieces: Vec<u32> = Vec::new();
        let mut start = 0;
        while start < word.len() {
            let vocab = if start == 0 {
                &self.initial
            } else {
                &self.continuation
            };
            let rest = &word[start..];
            let found = rest
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .rev()
                .find_map(|end| vocab.get(&rest[..end]).map(|id| (end, *id)));
            let Some((end, id)) = found else {
                pieces.clear();
                pieces.push(UNK);
                break;
            };
            pieces.push(id);
            start += end;
        }
        for id in pieces {
            emit(id);
        }
        word.clear();
    }
}

/// `tokenizers`' `is_control`: Unicode "Other" (Cc, Cf, Cn, Co, Cs) except tab, CR and LF.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.general_category_group() == GeneralCategoryGroup::Other
}

/// `BertPreTokenizer`'s split-off characters: ASCII punctuation and Unicode punctuation.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.general_category_group() == GeneralCategoryGroup::Punctuation
}

/// The CJK ideograph blocks that `BertNormalizer` pads with spaces.
fn is_chinese(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

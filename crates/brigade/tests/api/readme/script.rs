//! The README as a script: its `console` blocks split into commands (`$ ` lines, continued
//! while a quote is open or a line ends with `\`) and the output each shows, and the rule that
//! says whether a real output matches a shown one.
//!
//! Matching is deliberately forgiving where the README must be: whitespace is ignored (JSON is
//! wrapped for reading), ids, times, tokens, keys and durations are normalised on both sides,
//! and `...` stands for any text (the README abbreviates long answers with it). Everything else
//! must be exactly what the command printed.

use std::sync::LazyLock;

use regex::Regex;

/// One command of a console block and the output the README shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// 1-based line of README.md where the command starts.
    pub(crate) line: usize,
    /// The first command of its block.
    pub(crate) block_start: String,
    pub(crate) command: String,
    pub(crate) expected: String,
}

/// The steps of every ```` ```console ```` block of `markdown`, in order.
pub(crate) fn steps(markdown: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut open_command: Option<Step> = None;
    let mut state = Quotes::default();
    let mut block_start: Option<String> = None;
    for (i, line) in markdown.lines().enumerate() {
        let number = i + 1;
        if !in_console {
            in_console = line.trim_end() == "```console";
            block_start = None;
            continue;
        }
        if line.trim_end() == "```" {
            in_console = false;
            out.extend(open_command.take());
            continue;
        }
        if let Some(step) = open_command.as_mut()
            && state.continues()
        {
            step.command.push('\n');
            step.command.push_str(line);
            state.feed(line);
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            out.extend(open_command.take());
            state = Quotes::default();
            state.feed(command);
            let first = block_start.get_or_insert_with(|| command.to_string());
            open_command = Some(Step {
                line: number,
                block_start: first.clone(),
                command: command.to_string(),
                expected: String::new(),
            });
        } else if let Some(step) = open_command.as_mut() {
            if !step.expected.is_empty() {
                step.expected.push('\n');
            }
            step.expected.push_str(line);
        }
    }
    out
}

/// Shell quoting state across the lines of one command.
#[derive(Debug, Default)]
struct Quotes {
    single: bool,
    double: bool,
    backslash_at_end: bool,
}

impl Quotes {
    fn feed(&mut self, line: &str) {
        let mut escaped = false;
        for c in line.chars() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if !self.single => escaped = true,
                '\'' if !self.double => self.single = !self.single,
                '"' if !self.single => self.double = !self.double,
                _ => {}
            }
        }
        self.backslash_at_end = escaped;
    }

    fn continues(&self) -> bool {
        self.single || self.double || self.backslash_at_end
    }
}

/// What varies between runs, replaced by a placeholder on both sides.
static VARYING: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // Timestamps: RFC 3339 in JSON and logs.
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?",
            "<TIME>",
        ),
        // Migration file names start with a timestamp.
        (r"\b\d{17}_", "<STAMP>_"),
        // UUIDs: accounts, records, runs, keys, requests.
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<UUID>",
        ),
        // Tokens and keys, whole or cut short with `...` in the README.
        (r"eyJ[A-Za-z0-9_.\-]*", "<JWT>"),
        (r"\bbrt_[0-9a-f.]+", "<REFRESH>"),
        (r"\bbk_[0-9a-f.]+", "<KEY>"),
        // Collection and field ids.
        (r#""id":\s*"[0-9a-z]{9,15}""#, r#""id":"<SID>""#),
        // Durations, and the SECONDS column of a run's table.
        (r"\b\d+(\.\d+)?\s?(ms|s)\b", "<DURATION>"),
        (r"(?m)[ \t]\d+\.\d\d$", " <SECONDS>"),
        (
            r#""(latency_ms|took_ms|duration_ms)":\s*\d+"#,
            r#""$1":<N>"#,
        ),
    ]
    .into_iter()
    .map(|(pattern, with)| (Regex::new(pattern).expect("a valid pattern"), with))
    .collect()
});

/// `text` with what varies replaced and all whitespace removed.
pub(crate) fn normalise(text: &str) -> String {
    let mut text = text.to_string();
    for (pattern, with) in VARYING.iter() {
        text = pattern.replace_all(&text, *with).into_owned();
    }
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether `actual` is what `expected` shows, `...` standing for any text.
pub(crate) fn matches(expected: &str, actual: &str) -> bool {
    let (expected, actual) = (normalise(expected), normalise(actual));
    let parts: Vec<&str> = expected.split("...").collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return expected == actual;
    };
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        let Some(at) = rest.find(part) else {
            return false;
        };
        rest = &rest[at + part.len()..];
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_continue_while_a_quote_is_open_or_a_line_ends_in_a_backslash() {
        let md = "text\n```console\n$ curl -s x \\\n    -d '{\n  \"a\": 1}'\n{\"ok\":true}\n$ echo 'it'\"'\"'s'\nit's\n```\n```sh\n$ not run\n```\n";
        let steps = steps(md);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(steps[0].line, 3);
        assert_eq!(steps[0].command, "curl -s x \\\n    -d '{\n  \"a\": 1}'");
        assert_eq!(steps[0].expected, "{\"ok\":true}");
        assert_eq!(steps[1].command, "echo 'it'\"'\"'s'");
        assert_eq!(steps[1].expected, "it's");
    }

    #[test]
    fn output_matches_modulo_whitespace_ids_times_and_ellipses() {
        assert!(matches(
            "{\"id\":\"01a2051d-2ac9-7790-81de-d4c48e8da9e3\",\n \"created\":\"2026-11-22T21:15:28.971Z\",...}",
            "{\"id\":\"019af0c2-aaaa-7bbb-8ccc-123456789abc\",\"created\":\"2026-12-05T10:00:00.000Z\",\"x\":1}"
        ));
        assert!(matches("2 hits in 11 ms", "2 hits in 3 ms"));
        assert!(!matches("{\"priority\":2}", "{\"priority\":3}"));
        assert!(!matches("a...c", "ab"));
        assert!(matches("a...b...c", "a1b2c"));
        assert!(!matches("401 429", "401 401"));
    }
}

//! Files: CSV, NDJSON, JSON arrays and Parquet, one file or a glob, gzip read transparently. Runs on
//! a blocking thread and streams batches, so a 300 MB file costs no more memory than a
//! small one. CSV columns are typed from a sample of the first file; every row is converted
//! on the way, a row that does not fit is reported with its file and line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, SeqAccess, Visitor};

use super::shape::Shaper;
use super::{Batcher, Context, Message, Rejected, Sender};
use crate::error::PipelineError;
use crate::spec::Format;
use crate::spec::format_of;

mod delimited;

use delimited::{CsvState, csv_file};

const DEFAULT_SAMPLE: usize = 1000;

/// Reads every file of the extract and sends its rows.
///
/// # Errors
/// No file matches, a file cannot be read, or a bad row under `on_bad_row = "fail"`.
pub fn run(cx: &Context, tx: &Sender) -> Result<(), PipelineError> {
    let pattern = cx.spec.path.clone().unwrap_or_default();
    let files = expand(&cx.dir, &pattern).map_err(|m| extract_error(cx, &m))?;
    let format = cx
        .spec
        .format
        .or_else(|| format_of(&pattern))
        .unwrap_or(Format::Csv);
    let mut batcher = Batcher::for_context(cx);
    let send = |m: Message| {
        tx.blocking_send(Ok(m))
            .map_err(|_| PipelineError::Cancelled)
    };
    match format {
        Format::Csv => {
            let mut csv = CsvState::default();
            for file in &files {
                csv_file(cx, file, &mut csv, &mut batcher, &send)?;
            }
            if !csv.started {
                send(Message::Columns(Vec::new()))?;
            }
        }
        Format::Ndjson | Format::Json | Format::Parquet => {
            let cursor = cx
                .spec
                .incremental
                .as_ref()
                .map(|i| (i.cursor.clone(), cx.since.clone()));
            let mut shaper = Shaper::new(cx.overrides(), cursor).known(cx.existing.as_deref());
            for file in &files {
                let source = display(cx, file);
                let mut out = Vec::new();
                let mut each = |line: u64,
                                value: serde_json::Value,
                                batcher: &mut Batcher|
                 -> Result<(), PipelineError> {
                    if cx.is_cancelled() {
                        return Err(PipelineError::Cancelled);
                    }
                    match value {
                        serde_json::Value::Object(record) => {
                            shaper.push(&source, line, record, batcher, &mut out)?;
                        }
                        other => batcher.bad(Rejected {
                            source: source.clone(),
                            line,
                            error: "not a JSON object".into(),
                            raw: other.to_string(),
                        })?,
                    }
                    if batcher.full() {
                        out.extend(batcher.drain(&source));
                    }
                    for m in out.drain(..) {
                        send(m)?;
                    }
                    Ok(())
                };
                if format == Format::Parquet {
                    if std::fs::metadata(file).is_ok_and(|m| m.len() == 0) {
                        batcher.notes.push(empty_note(&source));
                        continue;
                    }
                    parquet_file(file, &source, &mut batcher, &mut each)?;
                    continue;
                }
                let Some(reader) = open_nonempty(file).map_err(|m| extract_error(cx, &m))? else {
                    batcher.notes.push(empty_note(&source));
                    continue;
                };
                if format == Format::Ndjson {
                    ndjson(reader, &source, &mut batcher, &mut each)?;
                } else {
                    json_array(reader, &source, &mut batcher, &mut each)?;
                }
            }
            let mut out = Vec::new();
            shaper.finish(&mut batcher, &mut out)?;
            for m in out {
                send(m)?;
            }
        }
    }
    for m in batcher.drain(
        files
            .last()
            .map(|f| display(cx, f))
            .as_deref()
            .unwrap_or(""),
    ) {
        send(m)?;
    }
    send(batcher.done())?;
    Ok(())
}

/// The report's note for a file without a byte of data.
fn empty_note(source: &str) -> String {
    format!("0 rows: file {source} is empty")
}

/// Opens `file` like [`open`]; `None` when it holds no data (0 bytes, or an empty gzip).
fn open_nonempty(file: &Path) -> Result<Option<Box<dyn BufRead + Send>>, String> {
    let mut reader = open(file)?;
    let empty = reader
        .fill_buf()
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .is_empty();
    Ok((!empty).then_some(reader))
}

fn extract_error(cx: &Context, message: &str) -> PipelineError {
    PipelineError::Extract(format!("extract `{}`: {message}", cx.spec.name))
}

/// The path of `file` as shown to users: relative to the app directory when inside it.
fn display(cx: &Context, file: &Path) -> String {
    file.strip_prefix(&cx.dir)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// The files matching `pattern` (relative to `dir` unless absolute), sorted.
fn expand(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let files = matching(dir, pattern)?;
    if files.is_empty() {
        return Err(format!(
            "no file matches `{pattern}` (looked in {})",
            dir.display()
        ));
    }
    Ok(files)
}

/// The files matching `pattern` (relative to `dir` unless absolute), sorted; none is not an
/// error here (the `files` trigger watches folders that may be empty).
///
/// # Errors
/// An invalid glob.
pub(crate) fn matching(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        dir.join(pattern)
    };
    let text = full.to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| format!("`{pattern}` is not a valid glob: {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Opens `file`, through gzip when it ends in `.gz` or starts with gzip's magic bytes.
fn open(file: &Path) -> Result<Box<dyn BufRead + Send>, String> {
    let mut f = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut magic = [0u8; 2];
    let n = f
        .read(&mut magic)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let f = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let gz = n == 2 && magic == [0x1f, 0x8b];
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, f))
    })
}

fn ndjson(
    mut reader: Box<dyn BufRead + Send>,
    source: &str,
    batcher: &mut Batcher,
    each: &mut dyn FnMut(u64, serde_json::Value, &mut Batcher) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let mut line = String::new();
    let mut number: u64 = 0;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| PipelineError::Extract(format!("{source}: {e}")))?;
        if n == 0 {
            break;
        }
        number += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str(text) {
            Ok(value) => each(number, value, batcher)?,
            Err(e) => batcher.bad(Rejected {
                source: source.to_string(),
                line: number,
                error: format!("not valid JSON: {e}"),
                raw: text.to_string(),
            })?,
        }
    }
    Ok(())
}

/// Streams the elements of a top-level JSON array without holding the array in memory.
fn json_array(
    reader: Box<dyn BufRead + Send>,
    source: &str,
    batcher: &mut Batcher,
    each: &mut dyn FnMut(u64, serde_json::Value, &mut Batcher) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    struct Elements<'a> {
        batcher: &'a mut Batcher,
        each: &'a mut dyn FnMut(u64, serde_json::Value, &mut Batcher) -> Result<(), PipelineError>,
        failure: Option<PipelineError>,
    }
    impl<'de> Visitor<'de> for &mut Elements<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0;
            while let Some(value) = seq.next_element::<serde_json::Value>()? {
                n += 1;
                if let Err(e) = (self.each)(n, value, self.batcher) {
                    self.failure = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for &mut Elements<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut elements = Elements {
        batcher,
        each,
        failure: None,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = (&mut elements).deserialize(&mut de);
    if let Some(failure) = elements.failure {
        return Err(failure);
    }
    result.map_err(|e| {
        PipelineError::Extract(format!(
            "{source} line {}: not a JSON array of objects: {e}",
            e.line()
        ))
    })
}

/// Streams the rows of a Parquet file, row group by row group. Timestamps become RFC 3339
/// and dates `YYYY-MM-DD`, like every other source.
fn parquet_file(
    file: &Path,
    source: &str,
    batcher: &mut Batcher,
    each: &mut dyn FnMut(u64, serde_json::Value, &mut Batcher) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    use parquet::file::reader::SerializedFileReader;
    use parquet::record::Field;
    let bad = |e: &dyn std::fmt::Display| {
        PipelineError::Extract(format!("{source}: not a readable Parquet file: {e}"))
    };
    let handle = File::open(file)
        .map_err(|e| PipelineError::Extract(format!("cannot open {source}: {e}")))?;
    let reader = SerializedFileReader::new(handle).map_err(|e| bad(&e))?;
    let utc = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    for (n, row) in reader.into_iter().enumerate() {
        let row = row.map_err(|e| bad(&e))?;
        let mut record = serde_json::Map::new();
        for (name, field) in row.get_column_iter() {
            let value = match field {
                Field::TimestampMillis(ms) => {
                    utc(ms.saturating_mul(1000)).map_or(serde_json::Value::Null, Into::into)
                }
                Field::TimestampMicros(us) => utc(*us).map_or(serde_json::Value::Null, Into::into),
                Field::Date(days) => chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                    .map_or(serde_json::Value::Null, |d| d.to_string().into()),
                other => other.to_json_value(),
            };
            record.insert(name.clone(), value);
        }
        each(n as u64 + 1, serde_json::Value::Object(record), batcher)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Files: CSV, NDJSON and JSON arrays, one file or a glob, gzip read transparently. Runs on
//! a blocking thread and streams batches, so a 300 MB file costs no more memory than a
//! small one. CSV columns are typed from a sample of the first file; every row is converted
//! on the way, a row that does not fit is reported with its file and line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use brigade_core::value::Value;
use brigade_store::warehouse::{Column, ColumnType};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};

use super::infer::{self, Inference};
use super::shape::Shaper;
use super::{Batcher, Context, CursorFilter, Message, Rejected, Sender, normalize_all};
use crate::error::PipelineError;
use crate::spec::Format;
use crate::spec::format_of;

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
    let mut batcher = Batcher::new(&cx.spec.name, cx.spec.on_bad_row);
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
        Format::Ndjson | Format::Json => {
            let cursor = cx
                .spec
                .incremental
                .as_ref()
                .map(|i| (i.cursor.clone(), cx.since.clone()));
            let mut shaper = Shaper::new(cx.overrides(), cursor);
            for file in &files {
                let source = display(cx, file);
                let reader = open(file).map_err(|m| extract_error(cx, &m))?;
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
        Format::Parquet => {
            return Err(extract_error(
                cx,
                "Parquet files are not supported yet; convert to CSV or NDJSON (e.g. with duckdb or pandas)",
            ));
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
    if files.is_empty() {
        return Err(format!(
            "no file matches `{pattern}` (looked in {})",
            dir.display()
        ));
    }
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

#[derive(Default)]
struct CsvState {
    started: bool,
    /// The header of the first file (raw) and its columns.
    header: Vec<String>,
    columns: Vec<Column>,
    first_file: String,
}

fn csv_file(
    cx: &Context,
    file: &Path,
    state: &mut CsvState,
    batcher: &mut Batcher,
    send: &dyn Fn(Message) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let source = display(cx, file);
    let reader = open(file).map_err(|m| extract_error(cx, &m))?;
    let delimiter = cx
        .spec
        .delimiter
        .as_deref()
        .map_or(b',', |d| d.as_bytes()[0]);
    let has_header = cx.spec.header.unwrap_or(true);
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(reader);
    let null_values: Vec<Vec<u8>> = cx
        .spec
        .null_values
        .clone()
        .unwrap_or_else(|| vec![String::new()])
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let mut record = csv::ByteRecord::new();
    let mut header: Vec<String> = Vec::new();
    if has_header {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {
                header = record
                    .iter()
                    .map(|f| {
                        String::from_utf8_lossy(f)
                            .trim_start_matches('\u{feff}')
                            .to_string()
                    })
                    .collect();
            }
            Ok(false) => return Ok(()),
            Err(e) => return Err(extract_error(cx, &format!("{source}: {e}"))),
        }
    }
    // Sample rows to type the columns (first file only).
    let mut sample: Vec<(u64, csv::ByteRecord)> = Vec::new();
    if !state.started {
        let limit = cx.spec.sample_rows.unwrap_or(DEFAULT_SAMPLE).max(1);
        while sample.len() < limit {
            let mut r = csv::ByteRecord::new();
            match csv.read_byte_record(&mut r) {
                Ok(true) => {
                    let line = r.position().map_or(0, csv::Position::line);
                    sample.push((line, r));
                }
                Ok(false) => break,
                Err(e) => return Err(extract_error(cx, &format!("{source}: {e}"))),
            }
        }
        if !has_header {
            let width = sample.first().map_or(0, |(_, r)| r.len());
            header = (1..=width).map(|i| format!("column_{i}")).collect();
        }
        let names = normalize_all(header.iter().map(String::as_str));
        let overrides = cx.overrides();
        let mut columns = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let ty = match overrides.iter().find(|(n, _)| *n == name) {
                Some((_, t)) => *t,
                None => {
                    let mut inference = Inference::default();
                    for (_, r) in &sample {
                        if let Some(field) = r.get(i)
                            && !null_values.iter().any(|n| n.as_slice() == field)
                            && let Ok(s) = std::str::from_utf8(field)
                        {
                            inference.observe(s);
                        }
                    }
                    inference.result()
                }
            };
            columns.push(Column { name, ty });
        }
        if let Some(inc) = &cx.spec.incremental {
            batcher.cursor = Some(
                CursorFilter::new(&inc.cursor, &columns, cx.since.as_ref())
                    .map_err(|m| extract_error(cx, &m))?,
            );
        }
        send(Message::Columns(columns.clone()))?;
        state.started = true;
        state.header = header;
        state.columns = columns;
        state.first_file = source.clone();
    } else if has_header && header != state.header {
        return Err(extract_error(
            cx,
            &format!(
                "{source} has columns ({}) but {} has ({}); files of one extract must share a header",
                header.join(", "),
                state.first_file,
                state.header.join(", ")
            ),
        ));
    }
    let types: Vec<ColumnType> = state.columns.iter().map(|c| c.ty).collect();
    let convert =
        |line: u64, r: &csv::ByteRecord, batcher: &mut Batcher| -> Result<(), PipelineError> {
            match row_of(r, &types, &null_values, &state.columns) {
                Ok(row) => batcher.row(row),
                Err(error) => batcher.bad(Rejected {
                    source: source.clone(),
                    line,
                    error,
                    raw: String::from_utf8_lossy(r.as_slice()).into_owned(),
                })?,
            }
            if batcher.full() {
                for m in batcher.drain(&source) {
                    send(m)?;
                }
            }
            Ok(())
        };
    for (line, r) in &sample {
        convert(*line, r, batcher)?;
    }
    drop(sample);
    let mut count: u64 = 0;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(extract_error(cx, &format!("{source}: {e}"))),
        }
        count += 1;
        if count.is_multiple_of(8192) && cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let line = record.position().map_or(0, csv::Position::line);
        convert(line, &record, batcher)?;
    }
    for m in batcher.drain(&source) {
        send(m)?;
    }
    Ok(())
}

/// Converts one CSV record.
fn row_of(
    record: &csv::ByteRecord,
    types: &[ColumnType],
    null_values: &[Vec<u8>],
    columns: &[Column],
) -> Result<Vec<Value>, String> {
    if record.len() != types.len() {
        return Err(format!(
            "has {} fields, the header has {}",
            record.len(),
            types.len()
        ));
    }
    let mut row = Vec::with_capacity(types.len());
    for (i, (field, ty)) in record.iter().zip(types).enumerate() {
        if null_values.iter().any(|n| n.as_slice() == field) {
            row.push(Value::Null);
            continue;
        }
        let s = std::str::from_utf8(field)
            .map_err(|_| format!("column `{}`: not valid UTF-8", columns[i].name))?;
        if s.contains('\0') {
            return Err(format!(
                "column `{}`: contains a NUL character",
                columns[i].name
            ));
        }
        let value = match ty {
            ColumnType::Integer => match s.parse::<i64>() {
                Ok(n) => Value::Int(n),
                Err(_) => infer::convert(s, *ty)
                    .map_err(|e| format!("column `{}`: {e}", columns[i].name))?,
            },
            ColumnType::Text => Value::Text(s.to_string()),
            _ => {
                infer::convert(s, *ty).map_err(|e| format!("column `{}`: {e}", columns[i].name))?
            }
        };
        row.push(value);
    }
    Ok(row)
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

//! Files: CSV, NDJSON, JSON arrays and Parquet, one file or a glob, gzip read transparently. Runs on
//! a blocking thread and streams batches, so a 300 MB file costs no more memory than a
//! small one. CSV columns are typed from a sample of the first file; every row is converted
//! on the way, a row that does not fit is reported with its file and line.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use brigade_core::value::Value;
use brigade_store::warehouse::{Column, ColumnType};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};

use super::infer::{self, Inference};
use super::shape::Shaper;
use super::{Batcher, Context, Message, Rejected, Sender, normalize_all};
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
    let Some(reader) = open_nonempty(file).map_err(|m| extract_error(cx, &m))? else {
        batcher.notes.push(empty_note(&source));
        return Ok(());
    };
    let window = Rc::new(RefCell::new(Window::default()));
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
        .from_reader(Tee::new(reader, window.clone()));
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
            Ok(false) => {
                batcher.notes.push(empty_note(&source));
                return Ok(());
            }
            Err(e) => return Err(extract_error(cx, &format!("{source}: {e}"))),
        }
    }
    // Sample rows to type the columns (first file only).
    let mut sample: Vec<(u64, csv::ByteRecord, Span)> = Vec::new();
    if !state.started {
        let limit = cx.spec.sample_rows.unwrap_or(DEFAULT_SAMPLE).max(1);
        while sample.len() < limit {
            let mut r = csv::ByteRecord::new();
            match csv.read_byte_record(&mut r) {
                Ok(true) => {
                    let line = r.position().map_or(0, csv::Position::line);
                    let span = span_of(&r, &csv);
                    sample.push((line, r, span));
                }
                Ok(false) => break,
                Err(e) => return Err(extract_error(cx, &format!("{source}: {e}"))),
            }
        }
        if sample.is_empty() && header.is_empty() {
            batcher.notes.push(empty_note(&source));
            return Ok(());
        }
        if !has_header {
            let width = sample.first().map_or(0, |(_, r, _)| r.len());
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
                    for (_, r, _) in &sample {
                        if let Some(field) = r.get(i)
                            && !null_values.iter().any(|n| n.as_slice() == field)
                            && let Ok(s) = std::str::from_utf8(field)
                        {
                            inference.observe(s);
                        }
                    }
                    if inference.seen() {
                        inference.result()
                    } else {
                        // No value to go by (a header-only file, an all-NULL sample): the
                        // bronze table's type, if it has this column, else text.
                        cx.existing
                            .iter()
                            .flatten()
                            .find(|c| c.name == name)
                            .map_or_else(|| inference.result(), |c| c.ty)
                    }
                }
            };
            columns.push(Column { name, ty });
        }
        if let Some(inc) = &cx.spec.incremental {
            batcher
                .start_cursor(&inc.cursor, &columns, cx.since.as_ref())
                .map_err(|m| extract_error(cx, &m))?;
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
    let convert = |line: u64,
                   r: &csv::ByteRecord,
                   span: Span,
                   batcher: &mut Batcher|
     -> Result<(), PipelineError> {
        match row_of(r, &types, &null_values, &state.columns) {
            Ok(row) => batcher.row(row),
            Err(error) => {
                let error = unterminated_quote(line, r, types.len()).unwrap_or(error);
                let raw = window
                    .borrow()
                    .text(span)
                    .unwrap_or_else(|| rebuild(r, delimiter));
                batcher.bad(Rejected {
                    source: source.clone(),
                    line,
                    error,
                    raw,
                })?;
            }
        }
        if batcher.full() {
            for m in batcher.drain(&source) {
                send(m)?;
            }
        }
        Ok(())
    };
    for (line, r, span) in &sample {
        convert(*line, r, *span, batcher)?;
    }
    let mut count = sample.len() as u64;
    drop(sample);
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
        let span = span_of(&record, &csv);
        convert(line, &record, span, batcher)?;
    }
    if count == 0 {
        batcher
            .notes
            .push(format!("0 rows: file {source} has a header but no rows"));
    }
    for m in batcher.drain(&source) {
        send(m)?;
    }
    Ok(())
}

/// A byte range of the (decompressed) file: where a record starts and the next begins.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

fn span_of<R: Read>(record: &csv::ByteRecord, csv: &csv::Reader<R>) -> Span {
    Span {
        start: record.position().map_or(0, csv::Position::byte),
        end: csv.position().byte(),
    }
}

/// The most recent bytes read from a file, so a rejected row keeps its text exactly as it
/// was (delimiters, quotes) without holding the file in memory.
#[derive(Default)]
struct Window {
    /// The offset of `bytes[0]` in the file.
    start: u64,
    bytes: Vec<u8>,
}

/// Bytes a [`Window`] holds at most before dropping its older half (the CSV reader's buffer
/// and a type sample of long rows fit).
const WINDOW: usize = 8 * 1024 * 1024;

impl Window {
    fn push(&mut self, data: &[u8]) {
        if self.bytes.len() + data.len() > WINDOW {
            let drop = self
                .bytes
                .len()
                .min(self.bytes.len() + data.len() - WINDOW / 2);
            self.bytes.drain(..drop);
            self.start += drop as u64;
        }
        self.bytes.extend_from_slice(data);
    }

    /// The text of `span` without its line terminator; `None` when no longer held.
    fn text(&self, span: Span) -> Option<String> {
        let from = usize::try_from(span.start.checked_sub(self.start)?).ok()?;
        let to = usize::try_from(span.end.checked_sub(self.start)?).ok()?;
        let mut bytes = self.bytes.get(from..to.min(self.bytes.len()))?;
        while let Some((last, rest)) = bytes.split_last()
            && matches!(last, b'\n' | b'\r')
        {
            bytes = rest;
        }
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// A reader that copies what it reads into a [`Window`].
struct Tee<R> {
    inner: R,
    window: Rc<RefCell<Window>>,
}

impl<R> Tee<R> {
    fn new(inner: R, window: Rc<RefCell<Window>>) -> Self {
        Tee { inner, window }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.window.borrow_mut().push(&buf[..n]);
        Ok(n)
    }
}

/// A record written back as CSV (when its original bytes are no longer held).
fn rebuild(record: &csv::ByteRecord, delimiter: u8) -> String {
    let mut out = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = out.write_byte_record(record);
    let bytes = out.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_string()
}

/// A record with the wrong number of fields, one of which runs over several lines, is an
/// opened quote that was never closed: the parser read on, rows and all, looking for its
/// end. Says so, with the line where the quote starts.
fn unterminated_quote(line: u64, record: &csv::ByteRecord, width: usize) -> Option<String> {
    if record.len() == width {
        return None;
    }
    let (i, field) = record
        .iter()
        .enumerate()
        .find(|(_, f)| f.contains(&b'\n'))?;
    let mut lines = record
        .iter()
        .map(|f| f.iter().filter(|b| **b == b'\n').count())
        .sum::<usize>();
    // Read to the end of the file: its last line break ends no line of the field.
    if record
        .iter()
        .next_back()
        .is_some_and(|f| f.ends_with(b"\n"))
    {
        lines -= 1;
    }
    Some(format!(
        "unterminated quote starting at line {line} (field {}): the quoted text runs on for {} lines, to line {}, taking the rows there with it; close the quote or escape it as \"\"",
        i + 1,
        lines + 1,
        line + lines as u64,
    ))
    .filter(|_| !field.is_empty())
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
mod tests {
    use std::io::Write;

    use serde_json::json;

    use crate::extract::test_support::{collect_started as collect, context};

    fn write(dir: &std::path::Path, name: &str, content: &[u8]) {
        std::fs::write(dir.join(name), content).expect("write fixture");
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).expect("gzip");
        enc.finish().expect("gzip")
    }

    #[tokio::test]
    async fn csv_options_globs_gzip_and_types() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.csv",
            b"Zip;City Name;Pop;When\n01234;\"Semi;colon\";12;2013-01-01\n99999;-;NA;2013-01-02\n",
        );
        write(
            dir.path(),
            "b.csv.gz",
            &gzip("Zip;City Name;Pop;When\n10001;\"New \"\"York\"\"\";8000000;2013-01-03\n"),
        );
        let cx = context(
            "name = \"cities\"\nfrom = \"file\"\npath = \"*.csv*\"\nformat = \"csv\"\ndelimiter = \";\"\nnull_values = [\"NA\", \"-\"]",
            dir.path(),
            None,
            &[],
        );
        let got = collect(cx).await.unwrap();
        let names: Vec<(&str, &str)> = got
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.name()))
            .collect();
        assert_eq!(
            names,
            [
                ("zip", "text"),
                ("city_name", "text"),
                ("pop", "integer"),
                ("when", "timestamp")
            ]
        );
        assert_eq!(
            got.column("zip"),
            [json!("01234"), json!("99999"), json!("10001")],
            "leading zeros kept"
        );
        assert_eq!(
            got.column("city_name"),
            [json!("Semi;colon"), json!(null), json!("New \"York\"")]
        );
        assert_eq!(got.column("pop"), [json!(12), json!(null), json!(8000000)]);
        assert_eq!(got.sources, ["a.csv", "a.csv", "b.csv.gz"]);
    }

    #[tokio::test]
    async fn bad_rows_fail_with_file_and_line_or_are_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d.csv", b"id,n\n1,10\n2,x\n3\n4,40\n");
        let toml = |policy: &str| {
            format!(
                "name = \"d\"\nfrom = \"file\"\npath = \"d.csv\"\nsample_rows = 1\non_bad_row = \"{policy}\""
            )
        };
        let e = collect(context(&toml("fail"), dir.path(), None, &[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.csv line 3") && e.contains("`x` is not an integer"),
            "{e}"
        );
        let got = collect(context(&toml("quarantine"), dir.path(), None, &[]))
            .await
            .unwrap();
        assert_eq!(got.column("id"), [json!(1), json!(4)]);
        let lines: Vec<(u64, &str)> = got
            .rejected
            .iter()
            .map(|r| (r.line, r.raw.as_str()))
            .collect();
        assert_eq!(
            lines,
            [(3, "2,x"), (4, "3")],
            "the rows as written: {:?}",
            got.rejected
        );
        assert!(
            got.rejected[1]
                .error
                .contains("has 1 fields, the header has 2")
        );
        let got = collect(context(&toml("skip"), dir.path(), None, &[]))
            .await
            .unwrap();
        assert_eq!(got.rows.len(), 2);
        assert_eq!(got.summary.skipped.bad_row, 2, "skipped rows are counted");
    }

    #[tokio::test]
    async fn an_unterminated_quote_is_named_with_its_line_and_raw_rows_keep_their_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("id,name,n\n1,a,1\n2,\"open,2\n");
        for i in 3..2000 {
            text.push_str(&format!("{i},x{i},{i}\n"));
        }
        write(dir.path(), "q.csv", text.as_bytes());
        let e = collect(context(
            "name = \"q\"\nfrom = \"file\"\npath = \"q.csv\"",
            dir.path(),
            None,
            &[],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("q.csv line 3: unterminated quote starting at line 3"),
            "{e}"
        );
        assert!(e.contains("to line 2000"), "{e}");
        // A quoted field with the delimiter in it, rejected: kept exactly as written.
        write(
            dir.path(),
            "r.csv",
            b"id,name\n1,a\nx,\"Semi, \"\"colon\"\"\"\r\n2,b\n",
        );
        let got = collect(context(
            "name = \"r\"\nfrom = \"file\"\npath = \"r.csv\"\nsample_rows = 1\non_bad_row = \"quarantine\"",
            dir.path(),
            None,
            &[],
        ))
        .await
        .unwrap();
        assert_eq!(got.rows.len(), 2);
        assert_eq!(got.rejected.len(), 1);
        assert_eq!(got.rejected[0].raw, "x,\"Semi, \"\"colon\"\"\"");
    }

    #[tokio::test]
    async fn empty_and_header_only_files_are_noted() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "e.csv", b"");
        write(dir.path(), "h.csv", b"a,b\n");
        write(dir.path(), "e.ndjson", b"");
        for (path, note) in [
            ("e.csv", "0 rows: file e.csv is empty"),
            ("h.csv", "0 rows: file h.csv has a header but no rows"),
            ("e.ndjson", "0 rows: file e.ndjson is empty"),
        ] {
            let got = collect(context(
                &format!("name = \"e\"\nfrom = \"file\"\npath = \"{path}\"\nincremental = {{ cursor = \"a\" }}"),
                dir.path(),
                None,
                &[],
            ))
            .await
            .unwrap();
            assert!(got.rows.is_empty());
            assert_eq!(got.summary.notes, [note], "{path}");
        }
        // Header only: a column the table already has keeps its type.
        let mut cx = context(
            "name = \"e\"\nfrom = \"file\"\npath = \"h.csv\"",
            dir.path(),
            None,
            &[],
        );
        cx.existing = Some(vec![brigade_store::warehouse::Column {
            name: "a".into(),
            ty: brigade_store::warehouse::ColumnType::Integer,
        }]);
        let got = collect(cx).await.unwrap();
        let types: Vec<&str> = got.columns.iter().map(|c| c.ty.name()).collect();
        assert_eq!(types, ["integer", "text"]);
    }

    #[tokio::test]
    async fn a_missing_file_and_a_header_change_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let e = collect(context(
            "name = \"x\"\nfrom = \"file\"\npath = \"nope/*.csv\"",
            dir.path(),
            None,
            &[],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("no file matches `nope/*.csv`"), "{e}");
        write(dir.path(), "1.csv", b"a,b\n1,2\n");
        write(dir.path(), "2.csv", b"a,c\n1,2\n");
        let e = collect(context(
            "name = \"x\"\nfrom = \"file\"\npath = \"*.csv\"",
            dir.path(),
            None,
            &[],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("2.csv has columns (a, c) but 1.csv has (a, b)"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn json_arrays_stream_and_incremental_filters() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "e.json", br#"[{"id": 1, "at": "2013-01-01T00:00:00Z"}, {"id": 2, "at": "2013-01-02T00:00:00Z", "extra": {"k": true}}]"#);
        let cx = context(
            "name = \"e\"\nfrom = \"file\"\npath = \"e.json\"\nincremental = { cursor = \"at\" }",
            dir.path(),
            Some(json!("2013-01-01T00:00:00Z")),
            &[],
        );
        let got = collect(cx).await.unwrap();
        assert_eq!(got.column("id"), [json!(2)]);
        assert_eq!(got.column("extra_k"), [json!(true)]);
        assert_eq!(got.done, Some(Some(json!("2013-01-02T00:00:00Z"))));
        write(dir.path(), "bad.json", b"{\"not\": \"an array\"}");
        let e = collect(context(
            "name = \"b\"\nfrom = \"file\"\npath = \"bad.json\"",
            dir.path(),
            None,
            &[],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a JSON array of objects"), "{e}");
    }

    /// Fixtures: `testdata/flights_sample*.parquet`, written by pyarrow (snappy with two row
    /// groups; zstd) with int64, string, double, bool, timestamp[ms, UTC] and date32 columns.
    #[tokio::test]
    async fn parquet_files_with_snappy_and_zstd() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        for file in ["flights_sample.parquet", "flights_sample_zstd.parquet"] {
            let cx = context(
                &format!("name = \"p\"\nfrom = \"file\"\npath = \"{file}\""),
                &dir,
                None,
                &[],
            );
            let got = collect(cx).await.unwrap();
            let names: Vec<(&str, &str)> = got
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.ty.name()))
                .collect();
            assert_eq!(
                names,
                [
                    ("id", "integer"),
                    ("carrier", "text"),
                    ("delay", "number"),
                    ("cancelled", "bool"),
                    ("time_hour", "timestamp"),
                    ("day", "timestamp")
                ],
                "{file}"
            );
            assert_eq!(
                got.column("carrier"),
                [json!("UA"), json!(null), json!("B6")]
            );
            assert_eq!(got.column("delay"), [json!(2.5), json!(null), json!(-1.0)]);
            assert_eq!(
                got.column("time_hour")[2],
                json!("2013-01-02T05:30:00.000Z")
            );
            assert_eq!(got.column("day")[2], json!("2013-01-02"));
        }
    }
}

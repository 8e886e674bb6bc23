//! CSV files: typed from a sample, read through a window that keeps the raw bytes of
//! recent rows so a bad row is reported with its line and its text as written.

use std::cell::RefCell;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use brigade_core::value::Value;
use brigade_store::warehouse::{Column, ColumnType};

use super::{DEFAULT_SAMPLE, display, empty_note, extract_error, open_nonempty};
use crate::error::PipelineError;
use crate::extract::infer::{self, Inference};
use crate::extract::{Batcher, Context, Message, Rejected, normalize_all};

/// What the first file of a glob fixed for the rest: the header and the inferred columns.
#[derive(Default)]
pub(super) struct CsvState {
    /// Whether a header was read (an extract of empty files still sends its columns).
    pub(super) started: bool,
    /// The header of the first file (raw) and its columns.
    header: Vec<String>,
    columns: Vec<Column>,
    first_file: String,
}

pub(super) fn csv_file(
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

//! Printing query results and reports.

use std::io::Write;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use darkroom_storage::QueryResult;

use crate::cli::Format;

/// Write rows in the chosen format to stdout.
pub fn print_rows(result: &QueryResult, format: Format) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            let text = arrow::util::pretty::pretty_format_batches(&result.batches)
                .context("formatting rows")?;
            if result.batches.is_empty() {
                // Still show the column names of an empty result.
                let empty = RecordBatch::new_empty(std::sync::Arc::clone(&result.schema));
                let text = arrow::util::pretty::pretty_format_batches(&[empty])?;
                writeln!(out, "{text}")?;
            } else {
                writeln!(out, "{text}")?;
            }
            writeln!(out, "({} rows)", result.num_rows())?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if result.batches.is_empty() {
                writer.write(&RecordBatch::new_empty(std::sync::Arc::clone(
                    &result.schema,
                )))?;
            }
            for batch in &result.batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = result.batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Write text to stdout; a closed pipe (`| head`) is an error the caller can return, not a
/// panic as with `println!`.
pub fn print_text(text: &str) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

//! Parses an nginx access log and reports rows, rejected lines and throughput.
//!
//! `cargo run --release -p darkroom-logs --example nginx_throughput -- FILE [FORMAT]`
//! where FORMAT is `combined` (default), `common` or a `log_format` string. A `.gz` file is
//! decompressed on the fly.

use std::fs::File;
use std::io::Read;
use std::time::Instant;

use darkroom_logs::{LineReader, LogParser, NginxFormat, NginxParser, ParseOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: nginx_throughput FILE [FORMAT]")?;
    let format =
        NginxFormat::from_name_or_format(&args.next().unwrap_or_else(|| "combined".into()))?;
    let file = File::open(&path)?;
    let input: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let options = ParseOptions::default();
    let batch_size = options.batch_size;
    let mut parser = NginxParser::new(format, options);
    let mut reader = LineReader::new(input);
    let (mut rows, mut bad) = (0_usize, 0_usize);
    let start = Instant::now();
    while let Some(line) = reader.next_line()? {
        if let Err(e) = parser.push_line(line.text, line.number) {
            bad += 1;
            if bad <= 5 {
                eprintln!("line {}: {e}", line.number);
            }
        }
        if parser.len() >= batch_size {
            rows += parser.finish_batch()?.num_rows();
        }
    }
    rows += parser.finish_batch()?.num_rows();
    let secs = start.elapsed().as_secs_f64();
    let bytes = reader.bytes_read();
    println!(
        "{rows} rows, {bad} bad lines, {bytes} bytes in {secs:.3} s: {:.0} MB/s, {:.0} lines/s",
        bytes as f64 / secs / 1e6,
        (rows + bad) as f64 / secs
    );
    Ok(())
}

//! Feeds arbitrary bytes, line by line, to the nginx parsers for `combined`, `common` and the
//! demo's custom format, and to a parser compiled from the input's first line when that line is
//! a valid `log_format`. No input may panic, and every accepted line must become exactly one row.

#![no_main]

use darkroom_logs::{IpPolicy, LineReader, LogParser, NginxFormat, NginxParser, ParseOptions};
use libfuzzer_sys::fuzz_target;

const DEMO: &str = concat!(
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "#,
    r#""$http_referer" "$http_user_agent" vid=$cookie_vid uid=$user_id rt=$request_time"#
);

fn parsers(data: &[u8]) -> Vec<NginxParser> {
    let options = |ip_policy| ParseOptions {
        timezone: chrono_tz::America::Toronto,
        ip_policy,
        batch_size: 16,
    };
    let mut parsers = vec![
        NginxParser::new(NginxFormat::combined(), options(IpPolicy::Keep)),
        NginxParser::new(
            NginxFormat::common(),
            options(IpPolicy::Truncate {
                v4_prefix: 24,
                v6_prefix: 48,
            }),
        ),
    ];
    if let Ok(demo) = NginxFormat::from_name_or_format(DEMO) {
        parsers.push(NginxParser::new(
            demo,
            options(IpPolicy::Hash {
                salt: b"fuzz".to_vec(),
            }),
        ));
    }
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    if let Ok(text) = std::str::from_utf8(first_line)
        && let Ok(format) = NginxFormat::from_name_or_format(text)
    {
        parsers.push(NginxParser::new(format, options(IpPolicy::Keep)));
    }
    parsers
}

fuzz_target!(|data: &[u8]| {
    let mut parsers = parsers(data);
    let mut accepted = vec![0_usize; parsers.len()];
    // A tiny buffer makes the reader grow and compact on almost every line.
    let mut reader = LineReader::with_capacity(7, data);
    let mut expected = data.split(|&b| b == b'\n');
    while let Some(line) = reader.next_line().expect("reading a slice cannot fail") {
        let same = expected.next().expect("the reader yields no extra lines");
        assert_eq!(line.raw, same);
        for (parser, accepted) in parsers.iter_mut().zip(&mut accepted) {
            if parser.push_line(line.text, line.number).is_ok() {
                *accepted += 1;
            }
            if parser.len() >= 16 {
                let batch = parser.finish_batch().expect("a batch always builds");
                *accepted -= batch.num_rows();
            }
        }
    }
    // `split` yields one empty piece after a final newline; the reader does not.
    assert!(expected.next().is_none_or(<[u8]>::is_empty));
    assert_eq!(reader.bytes_read(), data.len() as u64);
    for (parser, accepted) in parsers.iter_mut().zip(accepted) {
        let batch = parser.finish_batch().expect("a batch always builds");
        assert_eq!(batch.num_rows(), accepted);
        assert_eq!(batch.schema(), parser.schema());
        assert!(batch.columns().iter().all(|c| c.len() == accepted));
    }
});

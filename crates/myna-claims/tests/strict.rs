//! What the reader refuses, and that it names the line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use myna_claims::{BatchReader, BatchWriter, Limits, MAX_BATCH_LINES, MAX_LINE_BYTES, ParseError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const HEADER: &str = r#"{"type":"batch","format":1,"id":"b1"}"#;

fn first_error(bytes: &[u8]) -> ParseError {
    match read_all(bytes) {
        Ok(b) => panic!("read {} batches, expected an error", b.len()),
        Err(e) => e,
    }
}

/// The sample with line `index` (0-based) replaced.
fn replaced(index: usize, line: String) -> Vec<u8> {
    let mut lines = sample_lines().to_vec();
    lines[index] = line;
    join(&lines)
}

/// A sample line of `kind` changed by `edit`, in its place in the sample: the first error.
fn edited(kind: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> ParseError {
    let (i, mut map) = sample_line(kind);
    edit(&mut map);
    let e = first_error(&replaced(i, Value::Object(map).to_string()));
    assert_eq!(e.line, i as u64 + 1, "{e}");
    e
}

#[test]
fn empty_file_has_no_batches() {
    let mut r = BatchReader::new(&b""[..]);
    assert_eq!(r.next_batch(), Ok(None));
    assert_eq!(r.next_batch(), Ok(None));
    assert_eq!(read_all(b"\n\r\n  \n").unwrap(), vec![]);
}

#[test]
fn a_batch_may_be_empty() {
    let b = read_all(format!("{HEADER}\n").as_bytes()).unwrap();
    assert_eq!(b.len(), 1);
    assert!(b[0].is_empty());
    assert_eq!(b[0].lines, (1, 1));
}

#[test]
fn records_before_the_first_batch_are_refused() {
    let lines = sample_lines();
    let e = first_error(&join(&lines[1..]));
    assert_eq!(e.line, 1);
    assert!(e.problem.contains("before the first batch"), "{e}");
    let e = first_error(format!("\n\n{}\n{HEADER}\n", lines[1]).as_bytes());
    assert_eq!(e.line, 3);
}

#[test]
fn after_an_error_the_reader_stops() {
    let bytes = format!("{HEADER}\nnot json\n{HEADER}\n");
    let mut r = BatchReader::new(bytes.as_bytes());
    let e = r.next_batch().unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(r.next_batch(), Err(e.clone()));
    assert_eq!(
        e.to_string(),
        "line 2: invalid JSON at column 2: expected ident"
    );
}

#[test]
fn a_line_over_64_kib_is_refused() {
    let long = "x".repeat(MAX_LINE_BYTES + 1);
    let e = first_error(format!("{HEADER}\n{long}\n").as_bytes());
    assert_eq!(e.line, 2);
    assert!(e.problem.contains("longer than 65536 bytes"), "{e}");
    // Without a line end, and with CRLF, the same.
    assert_eq!(first_error(format!("{HEADER}\n{long}").as_bytes()).line, 2);
    assert_eq!(
        first_error(format!("{HEADER}\r\n{long}\r\n").as_bytes()).line,
        2
    );
    // A line of exactly 64 KiB is fine, with either line end.
    let (_, person) = sample_line("person");
    let mut exact = Value::Object(person).to_string();
    exact.push_str(&" ".repeat(MAX_LINE_BYTES - exact.len()));
    assert_eq!(exact.len(), MAX_LINE_BYTES);
    for end in ["\n", "\r\n", ""] {
        let b = read_all(format!("{HEADER}\n{exact}{end}").as_bytes()).unwrap();
        assert_eq!(b[0].persons.len(), 1);
    }
    // A lone CR at the end is not a line end: one byte too many.
    assert_eq!(
        first_error(format!("{HEADER}\n{exact}\r").as_bytes()).line,
        2
    );
}

#[test]
fn a_line_over_the_limit_is_not_buffered_whole() {
    // A reader whose whole input is one buffer: the reader still stops at the limit.
    let limits = Limits {
        max_line_bytes: 100,
        max_batch_lines: 10,
        ..Limits::default()
    };
    let huge = vec![b'x'; 10_000_000];
    let mut r = BatchReader::with_limits(&huge[..], limits);
    assert_eq!(r.next_batch().unwrap_err().line, 1);
    assert!(r.bytes_read() < 1000);
}

#[test]
fn the_batch_size_limit() {
    // The format's limit: blank lines count, the header too.
    let mut full = format!("{HEADER}\n");
    full.push_str(&"\n".repeat(MAX_BATCH_LINES as usize - 1));
    let b = read_all(full.as_bytes()).unwrap();
    assert_eq!(b[0].lines, (1, MAX_BATCH_LINES));
    full.push('\n');
    let e = first_error(full.as_bytes());
    assert_eq!(e.line, MAX_BATCH_LINES + 1);
    assert!(e.problem.contains("split"), "{e}");
    // The next batch's lines count afresh.
    let mut two = format!("{HEADER}\n");
    two.push_str(&"\n".repeat(MAX_BATCH_LINES as usize - 1));
    two.push_str(r#"{"type":"batch","format":1,"id":"b2"}"#);
    two.push_str(&"\n".repeat(10));
    assert_eq!(read_all(two.as_bytes()).unwrap().len(), 2);

    // A smaller limit, on real lines.
    let limits = Limits {
        max_line_bytes: MAX_LINE_BYTES,
        max_batch_lines: 4,
        ..Limits::default()
    };
    let lines = sample_lines();
    let ok = join(&lines[..4]);
    assert_eq!(read_all_with(&ok, limits).unwrap()[0].len(), 3);
    let e = read_all_with(&join(&lines[..5]), limits).unwrap_err();
    assert_eq!(e.line, 5);
    assert!(e.problem.contains("more than 4 lines"), "{e}");
}

#[test]
fn batch_lines_are_checked() {
    let cases = [
        (
            r#"{"type":"batch","format":2,"id":"b"}"#,
            "unsupported format 2",
        ),
        (r#"{"type":"batch","id":"b"}"#, "missing field `format`"),
        (r#"{"type":"batch","format":1}"#, "missing field `id`"),
        (r#"{"type":"batch","format":1,"id":""}"#, "empty"),
        (r#"{"type":"batch","format":1,"id":"a b"}"#, "whitespace"),
        (
            r#"{"type":"batch","format":1,"id":"日本"}"#,
            "printable ASCII",
        ),
        (
            r#"{"type":"batch","format":1,"id":"b","x":1}"#,
            "unknown field",
        ),
        (r#"{"type":"batch","format":"1","id":"b"}"#, "invalid type"),
    ];
    for (line, problem) in cases {
        let e = first_error(format!("\n{line}\n").as_bytes());
        assert_eq!(e.line, 2, "{line}");
        assert!(e.problem.contains(problem), "{line}: {e}");
    }
    let id = "i".repeat(128);
    let line = format!(r#"{{"type":"batch","format":1,"id":"{id}"}}"#);
    assert_eq!(read_all(line.as_bytes()).unwrap()[0].id, id);
    let line = format!(r#"{{"type":"batch","format":1,"id":"{id}x"}}"#);
    assert!(first_error(line.as_bytes()).problem.contains("128"));
}

#[test]
fn lines_that_are_not_records() {
    let cases: [(&[u8], &str); 7] = [
        (b"[1,2]", "must be a JSON object"),
        (b"{}", "no \"type\" field"),
        (br#"{"type":7}"#, "\"type\" must be a string"),
        (
            br#"{"type":"prescription"}"#,
            "unknown type \"prescription\"",
        ),
        (
            b"{\"type\":\"card\",\"serial\":\"\xff\"}",
            "not valid UTF-8",
        ),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (
            br#"{"type":"card","serial":"01AB","person":1}x"#,
            "trailing characters",
        ),
    ];
    for (line, problem) in cases {
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend_from_slice(line);
        let e = first_error(&bytes);
        assert_eq!(e.line, 2);
        assert!(e.problem.contains(problem), "{e}");
    }
}

#[test]
fn long_values_are_cut_short_in_errors() {
    let e = edited("person", |m| {
        m.insert("sex".into(), json!("x".repeat(10_000)));
    });
    assert!(e.problem.starts_with("person: unknown variant `xxx"), "{e}");
    assert!(e.problem.chars().count() <= 301 && e.problem.ends_with('…'));
}

#[test]
fn a_field_given_twice_is_refused() {
    let line = r#"{"type":"card","serial":"01AB","person":1,"person":2}"#;
    let e = first_error(format!("{HEADER}\n{line}").as_bytes());
    assert!(e.problem.contains("field \"person\" given twice"), "{e}");
}

#[test]
fn cards_are_checked() {
    let ok = r#"{"type":"card","serial":"01AB","person":3}"#;
    let b = read_all(format!("{HEADER}\n{ok}").as_bytes()).unwrap();
    assert_eq!(b[0].cards[0].1.serial, "01AB");
    for (serial, problem) in [
        ("", "empty"),
        ("01ab", "upper-case"),
        ("01XY", "hexadecimal"),
    ] {
        let e = edited("card", |m| {
            m.insert("serial".into(), json!(serial));
        });
        assert!(e.problem.contains(problem), "{e}");
    }
    let e = edited("card", |m| {
        m.insert("person".into(), json!(0));
    });
    assert_eq!(e.problem, "card: person must be positive (got 0)");
}

#[test]
fn persons_are_checked() {
    let e = edited("person", |m| {
        m.insert("id".into(), json!(-4));
    });
    assert_eq!(e.problem, "person: id must be positive (got -4)");
    let e = edited("person", |m| {
        m.insert("sex".into(), json!("m"));
    });
    assert!(e.problem.starts_with("person: unknown variant `m`"), "{e}");
    let e = edited("person", |m| {
        m.insert("birth_date".into(), json!("1980-02-30"));
    });
    assert!(e.problem.starts_with("person: "), "{e}");
    let e = edited("person", |m| {
        m.insert("birth_date".into(), json!("1850-01-01"));
    });
    assert_eq!(
        e.problem,
        "person: birth_date 1850-01-01 is outside the years 1900–2199"
    );
    let e = edited("person", |m| {
        m["address"]
            .as_object_mut()
            .unwrap()
            .insert("floor".into(), json!(3));
    });
    assert_eq!(e.problem, "person: unknown field \"address.floor\"");
}

#[test]
fn records_are_checked_by_the_domain_rules() {
    let e = edited("dispensing", |m| {
        m.insert("days".into(), json!(0));
    });
    assert!(e.problem.starts_with("dispensing: dispensing on "), "{e}");
    assert!(
        e.problem.contains("0 days supplied; 1 to 180 allowed"),
        "{e}"
    );
    let e = edited("dispensing", |m| {
        m.insert("days".into(), json!(181));
    });
    assert!(e.problem.contains("181 days supplied"), "{e}");
    for kind in [
        "visit",
        "dispensing",
        "procedure",
        "dialysis",
        "health_check",
    ] {
        let e = edited(kind, |m| {
            m.insert("available_on".into(), json!("1999-12-31"));
        });
        assert!(e.problem.contains("before the care"), "{kind}: {e}");
        for (field, date) in [
            ("service_date", "2300-01-01"),
            ("available_on", "1899-12-31"),
        ] {
            let e = edited(kind, |m| {
                m.insert(field.into(), json!(date));
            });
            assert_eq!(
                e.problem,
                format!("{kind}: {field} {date} is outside the years 1900–2199"),
                "{e}"
            );
        }
        let e = edited(kind, |m| {
            m.insert("person".into(), json!(0));
        });
        assert_eq!(
            e.problem,
            format!("{kind}: person must be positive (got 0)")
        );
        let e = edited(kind, |m| {
            m.insert("seq".into(), json!(-1));
        });
        assert!(e.problem.contains("invalid value"), "{kind}: {e}");
        let e = edited(kind, |m| {
            m.remove("seq");
        });
        assert_eq!(e.problem, format!("{kind}: missing field `seq`"));
    }
}

#[test]
fn optional_fields_are_written_as_null_and_required() {
    let e = edited("dispensing", |m| {
        assert!(m.contains_key("pharmacy"));
        m.remove("pharmacy");
    });
    assert!(e.problem.contains("missing field `pharmacy`"), "{e}");
    let e = edited("dispensing", |m| {
        m["drug"].as_object_mut().unwrap().remove("receipt_code");
    });
    assert!(
        e.problem.contains("missing field `drug.receipt_code`"),
        "{e}"
    );
}

#[test]
fn the_writer_refuses_what_the_reader_would() {
    let s = sets(0..1);
    let mut w = BatchWriter::new(Vec::new());
    assert!(w.person_set(&s[0]).is_err(), "before a batch");
    assert!(w.begin_batch("a b").is_err());
    assert!(w.begin_batch(&"x".repeat(129)).is_err());
    w.begin_batch("ok").unwrap();
    let mut bad = s[0].clone();
    bad.cert_serial = "01ab".into();
    assert!(w.person_set(&bad).is_err());
    let mut bad = s[0].clone();
    bad.person.id.0 = 0;
    assert!(w.person_set(&bad).is_err());
    assert_eq!(w.batch_lines(), Some(1));
    w.person_set(&s[0]).unwrap();
    let bytes = w.finish().unwrap();
    assert_eq!(read_all(&bytes).unwrap()[0].persons.len(), 1);
}

#[test]
fn the_documented_example_reads() {
    let doc = include_str!("../../../docs/import-format.md");
    let start = doc.find("```ndjson\n").unwrap() + "```ndjson\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let batches = read_all(&doc.as_bytes()[start..end]).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches.iter().map(|b| b.len()).sum::<u64>(), 6);
}

/// Garbage: not blank, never a valid line.
fn garbage() -> impl Strategy<Value = String> {
    "[a-z0-9{}\\[\\]:,\" ]{0,40}x".prop_map(|s| s)
}

fn lines_of_sample() -> impl Strategy<Value = usize> {
    0..sample_lines().len()
}

/// Keys of a line, top-level and one level down ("a.b").
fn paths(map: &Map<String, Value>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (k, v) in map {
        out.push((k.clone(), None));
        if let Value::Object(inner) = v {
            out.extend(inner.keys().map(|i| (k.clone(), Some(i.clone()))));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let n = count_lines(&bytes);
        for limits in [Limits::default(), Limits { max_line_bytes: 16, max_batch_lines: 3, ..Limits::default() }] {
            if let Err(e) = read_all_with(&bytes, limits) {
                prop_assert!((1..=n).contains(&e.line), "{e} of {n} lines");
            }
        }
    }

    #[test]
    fn arbitrary_lines_never_panic(
        picks in proptest::collection::vec(
            prop_oneof![
                lines_of_sample().prop_map(|i| sample_lines()[i].clone()),
                Just(HEADER.to_owned()),
                Just(String::new()),
                "[ -~]{0,30}",
                "\\{\"type\":\"[a-z_]{0,12}\"(,\"[a-z]{1,6}\":(1|\"x\"|null|\\{\\}))*\\}",
            ],
            0..40,
        ),
        crlf in any::<bool>(),
    ) {
        let text = picks.join(if crlf { "\r\n" } else { "\n" });
        let n = count_lines(text.as_bytes());
        if let Err(e) = read_all(text.as_bytes()) {
            prop_assert!((1..=n).contains(&e.line), "{e} of {n} lines");
        }
    }

    #[test]
    fn garbage_is_refused_on_its_line(index in lines_of_sample(), junk in garbage()) {
        let e = first_error(&replaced(index, junk));
        prop_assert_eq!(e.line, index as u64 + 1, "{}", e);
    }

    #[test]
    fn a_missing_field_is_refused_on_its_line(index in lines_of_sample(), pick in any::<prop::sample::Index>()) {
        let mut map: Map<String, Value> = serde_json::from_str(&sample_lines()[index]).unwrap();
        let all = paths(&map);
        let (key, inner) = pick.get(&all).clone();
        match &inner {
            None => { map.remove(&key); }
            Some(i) => { map[&key].as_object_mut().unwrap().remove(i); }
        }
        let e = first_error(&replaced(index, Value::Object(map).to_string()));
        prop_assert_eq!(e.line, index as u64 + 1, "{}", e);
    }

    #[test]
    fn an_unknown_field_is_refused(index in lines_of_sample(), pick in any::<prop::sample::Index>(), name in "[a-z_]{1,10}") {
        let mut map: Map<String, Value> = serde_json::from_str(&sample_lines()[index]).unwrap();
        let all = paths(&map);
        let (key, inner) = pick.get(&all).clone();
        let nested = inner.is_some() && map.get(&key).is_some_and(Value::is_object);
        let target = if nested {
            map.get_mut(&key).and_then(Value::as_object_mut).unwrap()
        } else {
            &mut map
        };
        prop_assume!(!target.contains_key(&name));
        target.insert(name, json!(1));
        let e = first_error(&replaced(index, Value::Object(map).to_string()));
        prop_assert_eq!(e.line, index as u64 + 1, "{}", e);
        prop_assert!(e.problem.contains("unknown field"), "{}", e);
    }
}

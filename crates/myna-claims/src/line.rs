//! One line of the file, parsed and checked on its own.

use crate::{CardLink, ClaimRecord, FORMAT, Record, check_batch_id, check_serial};
use myna_domain::person::{Person, PersonId};
use myna_domain::records::MedicalRecords;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

pub(crate) enum Line {
    Blank,
    Batch(String),
    Person(Person),
    Card(CardLink),
    Record(ClaimRecord),
}

/// A line holding only spaces and tabs (or nothing).
pub(crate) fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == b' ' || *b == b'\t')
}

/// Parses one line, given without its line end. The error is the problem, without the line.
pub(crate) fn parse(bytes: &[u8]) -> Result<Line, String> {
    if is_blank(bytes) {
        return Ok(Line::Blank);
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err("a byte order mark is not allowed".into());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not valid UTF-8 (at byte {})", e.valid_up_to() + 1))?;
    // PostgreSQL text cannot hold a NUL; SQLite would, so both refuse it here alike.
    if text.contains("\\u0000") {
        return Err("a NUL character (\\u0000) is not allowed".into());
    }
    let StrictValue(value) = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&at).unwrap_or(&message);
        format!("invalid JSON at column {}: {message}", e.column())
    })?;
    let Value::Object(mut map) = value else {
        return Err("a line must be a JSON object".into());
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err("\"type\" must be a string".into()),
        None => return Err("no \"type\" field".into()),
    };
    match kind.as_str() {
        "batch" => {
            let b: BatchLine = strict("batch", map)?;
            if b.format != FORMAT {
                return Err(format!(
                    "batch: unsupported format {} (this reader reads format {FORMAT})",
                    b.format
                ));
            }
            check_batch_id(&b.id).map_err(|e| format!("batch: {e}"))?;
            Ok(Line::Batch(b.id))
        }
        "person" => {
            let p: Person = typed("person", map)?;
            positive("person: id", p.id)?;
            in_years("person: birth_date", p.birth_date)?;
            Ok(Line::Person(p))
        }
        "card" => {
            let c: CardLine = strict("card", map)?;
            check_serial(&c.serial).map_err(|e| format!("card: {e}"))?;
            positive("card: person", c.person)?;
            Ok(Line::Card(CardLink {
                serial: c.serial,
                person: c.person,
            }))
        }
        "visit" => record(map, "visit", |r| &mut r.visits, Record::Visit),
        "dispensing" => record(
            map,
            "dispensing",
            |r| &mut r.dispensings,
            Record::Dispensing,
        ),
        "procedure" => record(map, "procedure", |r| &mut r.procedures, Record::Procedure),
        "dialysis" => record(map, "dialysis", |r| &mut r.dialysis, Record::Dialysis),
        "health_check" => record(
            map,
            "health_check",
            |r| &mut r.health_checks,
            Record::HealthCheck,
        ),
        other => Err(format!("unknown type {}", shorten(other))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    format: u64,
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardLine {
    serial: String,
    person: PersonId,
}

/// The `person` and `seq` of a record line; the rest of the line is the record.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordKey {
    person: PersonId,
    seq: u32,
}

fn positive(what: &str, id: PersonId) -> Result<(), String> {
    if id.0 > 0 {
        Ok(())
    } else {
        Err(format!("{what} must be positive (got {})", id.0))
    }
}

fn record<T: DeserializeOwned + Serialize>(
    mut map: Map<String, Value>,
    kind: &str,
    place: fn(&mut MedicalRecords) -> &mut Vec<T>,
    wrap: fn(T) -> Record,
) -> Result<Line, String> {
    let mut key = Map::new();
    for field in ["person", "seq"] {
        match map.remove(field) {
            Some(v) => {
                key.insert(field.to_owned(), v);
            }
            None => return Err(format!("{kind}: missing field `{field}`")),
        }
    }
    let key: RecordKey = strict(kind, key)?;
    positive(&format!("{kind}: person"), key.person)?;
    // Dates a store keeps as text sort as dates only within four-digit years.
    for field in ["service_date", "available_on"] {
        if let Some(d) = map
            .get(field)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<chrono::NaiveDate>().ok())
        {
            in_years(&format!("{kind}: {field}"), d)?;
        }
    }
    // Institution codes are keys the store indexes: bounded here, for both engines.
    for field in ["institution", "prescriber", "pharmacy"] {
        if let Some(code) = map
            .get(field)
            .and_then(|i| i.get("code"))
            .and_then(Value::as_str)
            && code.chars().count() > crate::MAX_CODE_CHARS
        {
            return Err(format!(
                "{kind}: {field} code is longer than {} characters",
                crate::MAX_CODE_CHARS
            ));
        }
    }
    let rec: T = typed(kind, map)?;
    // The domain's own check, on a record set of this one record.
    let mut one = MedicalRecords::default();
    place(&mut one).push(rec);
    one.check().map_err(|e| format!("{kind}: {e}"))?;
    let rec = place(&mut one)
        .pop()
        .ok_or_else(|| format!("{kind}: record lost while checking it"))?;
    Ok(Line::Record(ClaimRecord {
        person: key.person,
        seq: key.seq,
        record: wrap(rec),
    }))
}

/// The years a date may fall in.
pub(crate) const YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

fn in_years(what: &str, d: chrono::NaiveDate) -> Result<(), String> {
    use chrono::Datelike;
    if YEARS.contains(&d.year()) {
        Ok(())
    } else {
        Err(format!(
            "{what} {d} is outside the years {}–{}",
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// A type that refuses unknown fields by itself.
fn strict<T: DeserializeOwned>(kind: &str, map: Map<String, Value>) -> Result<T, String> {
    T::deserialize(&Value::Object(map)).map_err(|e| format!("{kind}: {e}"))
}

/// A domain type, whose serde accepts unknown fields and missing optional ones: deserialized,
/// then serialized back and compared field by field with the line, so that every field the
/// line holds is known and every field of the type is present (`null` for none).
fn typed<T: DeserializeOwned + Serialize>(
    kind: &str,
    map: Map<String, Value>,
) -> Result<T, String> {
    let input = Value::Object(map);
    let value = T::deserialize(&input).map_err(|e| format!("{kind}: {e}"))?;
    let back = serde_json::to_value(&value).map_err(|e| format!("{kind}: {e}"))?;
    same_fields(&input, &back, "").map_err(|e| format!("{kind}: {e}"))?;
    Ok(value)
}

fn same_fields(input: &Value, back: &Value, path: &str) -> Result<(), String> {
    let (Value::Object(input), Value::Object(back)) = (input, back) else {
        return Ok(());
    };
    let at = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Some(k) = input.keys().find(|k| !back.contains_key(*k)) {
        return Err(format!("unknown field {}", shorten(&at(k))));
    }
    if let Some(k) = back.keys().find(|k| !input.contains_key(*k)) {
        return Err(format!(
            "missing field `{}` (null when there is none)",
            at(k)
        ));
    }
    for (k, v) in input {
        if let Some(b) = back.get(k) {
            same_fields(v, b, &at(k))?;
        }
    }
    Ok(())
}

/// Text from the file, cut short for an error message.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// A JSON value that refuses an object with the same key twice (serde_json keeps the last).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "field {} given twice",
                    shorten(&key)
                )));
            }
            let StrictValue(v) = access.next_value()?;
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

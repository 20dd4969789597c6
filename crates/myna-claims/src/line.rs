//! One line of the file, parsed and checked on its own.
//!
//! A line is parsed once, straight into its typed value: the visitors below read the `type`,
//! then each field of the kind's struct, refusing an unknown field, a field given twice and (at
//! the end of each object) a missing one. That is the fast path, taken when `type` is the
//! line's first field, as [`BatchWriter`](crate::BatchWriter) writes it. A line whose `type`
//! comes later (the format allows any order) is parsed into a [`Value`] first, refusing
//! repeated keys, and the same visitors then read the kind's fields from it.
//!
//! When the fast path refuses a line, the line is parsed again (into a [`Value`]) to say why,
//! so that the problems keep the precedence they have always had: UTF-8, NUL, JSON syntax and
//! repeated keys, an object with a known `type`, and only then the kind's fields (of a line
//! with several problems among its fields, the first in the line is named). Refused lines are
//! rare: a valid line with `type` first is parsed once.

use crate::{CardLink, ClaimRecord, FORMAT, Record, check_batch_id, check_serial};
use chrono::NaiveDate;
use myna_domain::codes::{ReceiptDrugCode, YjCode};
use myna_domain::person::{Address, Coverage, Person, PersonId, Sex};
use myna_domain::records::{
    CareSetting, Dialysis, DialysisModality, Dispensing, DrugRef, HealthCheck, Institution,
    InstitutionKind, MedicalRecords, Procedure, ProcedureKind, Source, Visit,
};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

pub(crate) enum Line {
    Blank,
    Batch(String),
    Person(Person),
    Card(CardLink),
    Record(ClaimRecord),
}

/// A line as parsed, before the checks that need the whole value.
enum Parsed {
    Batch(BatchLine),
    Person(Person),
    Card(CardLine),
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
    // PostgreSQL text cannot hold a NUL; SQLite would, so both refuse it here alike. A raw NUL
    // byte is a control character JSON refuses in a string and anywhere else.
    if memchr::memchr(b'\\', bytes).is_some() && text.contains("\\u0000") {
        return Err("a NUL character (\\u0000) is not allowed".into());
    }
    let type_later = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let fast = de
        .deserialize_map(LineVisitor {
            type_later: &type_later,
        })
        .and_then(|parsed| de.end().map(|()| parsed));
    match fast {
        Ok(parsed) => check(parsed),
        Err(_) if type_later.get() => check(slow(text)?),
        Err(e) => Err(explain(text, &e)),
    }
}

/// A line whose `type` is not its first field: as a [`Value`], then typed.
fn slow(text: &str) -> Result<Parsed, String> {
    let (kind, map) = shape(text)?;
    Value::Object(map)
        .deserialize_map(KindVisitor(kind))
        .map_err(|e| data_error(kind, &e))
}

/// Why the fast path refused a line, found as the checks have always been made: the JSON
/// (syntax, repeated keys), the line's shape and `type`, then the kind's fields.
fn explain(text: &str, fast: &serde_json::Error) -> String {
    match shape(text) {
        Err(problem) => problem,
        Ok((kind, _)) => data_error(kind, fast),
    }
}

/// The line as a JSON object without its `type`, and the kind that `type` names.
fn shape(text: &str) -> Result<(Kind, Map<String, Value>), String> {
    let StrictValue(value) = serde_json::from_str(text).map_err(|e| {
        format!(
            "invalid JSON at column {}: {}",
            e.column(),
            without_position(&e)
        )
    })?;
    let Value::Object(mut map) = value else {
        return Err("a line must be a JSON object".into());
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err("\"type\" must be a string".into()),
        None => return Err("no \"type\" field".into()),
    };
    match Kind::of(&kind) {
        Some(k) => Ok((k, map)),
        None => Err(format!("unknown type {}", shorten(&kind))),
    }
}

/// A problem with a field of a `kind` line, without the position serde_json appends to a
/// value's problem. (The JSON is valid; serde_json still calls some values of the wrong shape,
/// such as an array for a name, a syntax error: those keep their column.)
fn data_error(kind: Kind, e: &serde_json::Error) -> String {
    let message = without_position(e);
    match e.classify() {
        serde_json::error::Category::Data => format!("{}: {message}", kind.name()),
        _ => format!("{}: {message} at column {}", kind.name(), e.column()),
    }
}

/// serde_json's message without the position it appends (` at line 1 column 7`).
fn without_position(e: &serde_json::Error) -> String {
    let mut message = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    if message.ends_with(&at) {
        message.truncate(message.len() - at.len());
    }
    message
}

/// The line's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Batch,
    Person,
    Card,
    Visit,
    Dispensing,
    Procedure,
    Dialysis,
    HealthCheck,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Batch,
        Kind::Person,
        Kind::Card,
        Kind::Visit,
        Kind::Dispensing,
        Kind::Procedure,
        Kind::Dialysis,
        Kind::HealthCheck,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Batch => "batch",
            Kind::Person => "person",
            Kind::Card => "card",
            Kind::Visit => "visit",
            Kind::Dispensing => "dispensing",
            Kind::Procedure => "procedure",
            Kind::Dialysis => "dialysis",
            Kind::HealthCheck => "health_check",
        }
    }

    fn of(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindName;
        impl Visitor<'_> for KindName {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a line type")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
                Kind::of(v).ok_or_else(|| E::custom(format_args!("unknown type {}", shorten(v))))
            }
        }
        d.deserialize_str(KindName)
    }
}

/// The whole line on the fast path: `type` first, then the kind's fields.
struct LineVisitor<'a> {
    /// Set when the first field is not `type`: the line takes the slow path.
    type_later: &'a Cell<bool>,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        match map.next_key_seed(IsType)? {
            Some(true) => {}
            Some(false) => {
                self.type_later.set(true);
                return Err(de::Error::custom("\"type\" is not the first field"));
            }
            None => return Err(de::Error::custom("no \"type\" field")),
        }
        let kind: Kind = map.next_value()?;
        read_kind(kind, &mut map)
    }
}

/// The first key of a line: whether it is `type`.
struct IsType;

impl<'de> DeserializeSeed<'de> for IsType {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IsType {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "type")
    }
}

/// The fields of a `kind` line other than `type`, from a map without it (the slow path).
struct KindVisitor(Kind);

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        read_kind(self.0, &mut map)
    }
}

/// Reads the fields of a `kind` line after its `type` (or from a map without it).
fn read_kind<'de, A: MapAccess<'de>>(kind: Kind, map: &mut A) -> Result<Parsed, A::Error> {
    Ok(match kind {
        Kind::Batch => Parsed::Batch(line_fields(map)?),
        Kind::Person => Parsed::Person(line_fields(map)?),
        Kind::Card => Parsed::Card(line_fields(map)?),
        Kind::Visit => Parsed::Record(record_fields(map, Record::Visit)?),
        Kind::Dispensing => Parsed::Record(record_fields(map, Record::Dispensing)?),
        Kind::Procedure => Parsed::Record(record_fields(map, Record::Procedure)?),
        Kind::Dialysis => Parsed::Record(record_fields(map, Record::Dialysis)?),
        Kind::HealthCheck => Parsed::Record(record_fields(map, Record::HealthCheck)?),
    })
}

/// A line's own fields before its struct's: `type` (read already), and a record's key.
const TYPE: &[&str] = &["type"];
const RECORD_HEAD: &[&str] = &["type", "person", "seq"];

/// A `batch`, `person` or `card` line: `type` and the fields of `T`.
fn line_fields<'de, T: Strict, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    let mut partial = T::Partial::default();
    fields(map, TYPE, T::FIELDS, At::TOP, |i, map| match i {
        0 => Ok(()),
        i => T::field(&mut partial, i - TYPE.len(), map, At::TOP),
    })?;
    T::finish(partial, At::TOP)
}

/// A record line: `type`, `person`, `seq` and the record's fields.
fn record_fields<'de, T: Strict, A: MapAccess<'de>>(
    map: &mut A,
    wrap: fn(T) -> Record,
) -> Result<ClaimRecord, A::Error> {
    let mut partial = T::Partial::default();
    let (mut person, mut seq) = (None, None);
    fields(map, RECORD_HEAD, T::FIELDS, At::TOP, |i, map| {
        match i {
            0 => {}
            1 => person = Some(map.next_value::<PersonId>()?),
            2 => seq = Some(map.next_value::<u32>()?),
            i => T::field(&mut partial, i - RECORD_HEAD.len(), map, At::TOP)?,
        }
        Ok(())
    })?;
    let person = need(person, At::TOP, "person", false)?;
    let seq = need(seq, At::TOP, "seq", false)?;
    Ok(ClaimRecord {
        person,
        seq,
        record: wrap(T::finish(partial, At::TOP)?),
    })
}

/// Reads the keys of an object whose fields are `head` then `names` (their index in that
/// order) until its end, handing each value to `read` with its field's index. An unknown key
/// or a key given twice is an error; `type` (index 0 of a line's `head`) counts as read.
fn fields<'de, A: MapAccess<'de>>(
    map: &mut A,
    head: &'static [&'static str],
    names: &'static [&'static str],
    at: At<'_>,
    mut read: impl FnMut(usize, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    // A line's `type` has been read; the fields usually follow in the order of the struct.
    let mut seen: u32 = u32::from(!head.is_empty());
    let mut expect = usize::from(!head.is_empty());
    while let Some(i) = map.next_key_seed(Key {
        head,
        names,
        expect,
        at,
    })? {
        let bit = 1u32 << i;
        if seen & bit != 0 {
            let name = head.iter().chain(names).nth(i).copied().unwrap_or("");
            return Err(de::Error::custom(format_args!(
                "field {} given twice",
                shorten(&at.path(name))
            )));
        }
        seen |= bit;
        expect = i + 1;
        read(i, map)?;
    }
    Ok(())
}

/// Where an object sits in the line, for messages: `address` in `address.floor`.
#[derive(Clone, Copy)]
struct At<'a> {
    /// The object holding this one, `None` for the line itself.
    up: Option<&'a At<'a>>,
    name: &'static str,
}

impl<'a> At<'a> {
    const TOP: At<'static> = At { up: None, name: "" };

    fn child(&'a self, name: &'static str) -> At<'a> {
        At {
            up: Some(self),
            name,
        }
    }

    /// The path of `field` of this object.
    fn path(&self, field: &str) -> String {
        let mut out = String::new();
        self.prefix(&mut out);
        out.push_str(field);
        out
    }

    fn prefix(&self, out: &mut String) {
        if let Some(up) = self.up {
            up.prefix(out);
            out.push_str(self.name);
            out.push('.');
        }
    }
}

/// A key of an object: the index of its field among `head` then `names`; any other key is an
/// unknown field.
struct Key<'a> {
    head: &'static [&'static str],
    names: &'static [&'static str],
    /// The field expected next, tried first.
    expect: usize,
    at: At<'a>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        let expected = match self.expect.checked_sub(self.head.len()) {
            None => self.head.get(self.expect),
            Some(i) => self.names.get(i),
        };
        if expected.is_some_and(|n| *n == v) {
            return Ok(self.expect);
        }
        self.head
            .iter()
            .chain(self.names)
            .position(|n| *n == v)
            .ok_or_else(|| E::custom(format_args!("unknown field {}", shorten(&self.at.path(v)))))
    }
}

/// A field's value, or the error that it is missing.
fn need<T, E: de::Error>(value: Option<T>, at: At<'_>, name: &str, nullable: bool) -> Result<T, E> {
    value.ok_or_else(|| {
        let hint = if nullable {
            " (null when there is none)"
        } else {
            ""
        };
        E::custom(format_args!("missing field `{}`{hint}", at.path(name)))
    })
}

/// A struct read from a JSON object field by field: every field present exactly once (one that
/// may be empty as `null`), no other. Implemented by [`strict!`].
trait Strict: Sized {
    /// The field names, in the order of the struct.
    const FIELDS: &'static [&'static str];
    /// The fields read so far.
    type Partial: Default;
    /// Reads the value of the field `FIELDS[index]`.
    fn field<'de, A: MapAccess<'de>>(
        partial: &mut Self::Partial,
        index: usize,
        map: &mut A,
        at: At<'_>,
    ) -> Result<(), A::Error>;
    /// The struct, or the first field missing.
    fn finish<E: de::Error>(partial: Self::Partial, at: At<'_>) -> Result<Self, E>;
}

/// An object field holding a `T`.
struct Object<'a, T>(At<'a>, PhantomData<T>);

impl<'de, T: Strict> DeserializeSeed<'de> for Object<'_, T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Strict> Visitor<'de> for Object<'_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let at = self.0;
        let mut partial = T::Partial::default();
        fields(&mut map, &[], T::FIELDS, at, |i, map| {
            T::field(&mut partial, i, map, at)
        })?;
        T::finish(partial, at)
    }
}

/// An object field holding a `T`, or `null`.
struct NullableObject<'a, T>(At<'a>, PhantomData<T>);

impl<'de, T: Strict> DeserializeSeed<'de> for NullableObject<'_, T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, T: Strict> Visitor<'de> for NullableObject<'_, T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        Object(self.0, PhantomData).deserialize(d).map(Some)
    }
}

/// Implements [`Strict`] for a struct from its fields, each `name: how Type`, where `how` is
/// `value` (the type's own serde), `date` (a [`NaiveDate`], read as [`Date`]), `nullable` (an
/// `Option` of the type, `null` for none), `object` (a struct that is itself `Strict`) or
/// `nullable_object`. List every field of the struct, under its serde name: the struct literal
/// in `finish` fails to compile if one is missing, and the round-trip tests fail if a name is
/// not the one the domain's serde writes.
macro_rules! strict {
    ($ty:ident { $($field:ident: $how:ident $t:ty),* $(,)? }) => {
        const _: () = {
            #[derive(Default)]
            struct Partial {
                $($field: Option<strict!(@type $how $t)>,)*
            }

            #[allow(non_camel_case_types)]
            enum Index {
                $($field,)*
            }

            impl Strict for $ty {
                const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
                type Partial = Partial;

                fn field<'de, A: MapAccess<'de>>(
                    partial: &mut Partial,
                    index: usize,
                    map: &mut A,
                    at: At<'_>,
                ) -> Result<(), A::Error> {
                    // Used by the fields holding objects, if any.
                    let _ = at;
                    $(
                        if index == Index::$field as usize {
                            partial.$field =
                                Some(strict!(@read $how $t, map, at, stringify!($field)));
                            return Ok(());
                        }
                    )*
                    Ok(())
                }

                fn finish<E: de::Error>(partial: Partial, at: At<'_>) -> Result<Self, E> {
                    Ok($ty {
                        $($field: need(
                            partial.$field,
                            at,
                            stringify!($field),
                            strict!(@nullable $how),
                        )?,)*
                    })
                }
            }

            // Every field has a bit in `fields`' `u32`, after a record line's three.
            assert!(<$ty as Strict>::FIELDS.len() + RECORD_HEAD.len() <= 32);
        };
    };
    (@type value $t:ty) => { $t };
    (@type date $t:ty) => { $t };
    (@type object $t:ty) => { $t };
    (@type nullable $t:ty) => { Option<$t> };
    (@type nullable_object $t:ty) => { Option<$t> };
    (@nullable value) => { false };
    (@nullable date) => { false };
    (@nullable object) => { false };
    (@nullable nullable) => { true };
    (@nullable nullable_object) => { true };
    (@read value $t:ty, $map:ident, $at:ident, $name:expr) => {
        $map.next_value::<$t>()?
    };
    (@read date $t:ty, $map:ident, $at:ident, $name:expr) => {
        $map.next_value::<Date>()?.0
    };
    (@read nullable $t:ty, $map:ident, $at:ident, $name:expr) => {
        $map.next_value::<Option<$t>>()?
    };
    (@read object $t:ty, $map:ident, $at:ident, $name:expr) => {
        $map.next_value_seed(Object::<$t>($at.child($name), PhantomData))?
    };
    (@read nullable_object $t:ty, $map:ident, $at:ident, $name:expr) => {
        $map.next_value_seed(NullableObject::<$t>($at.child($name), PhantomData))?
    };
}

/// A [`NaiveDate`] as chrono's serde reads it (`str::parse`), without its general parser for
/// the form the format writes, `YYYY-MM-DD`.
struct Date(NaiveDate);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(DateVisitor)
    }
}

struct DateVisitor;

impl Visitor<'_> for DateVisitor {
    type Value = Date;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // chrono's words, as before.
        f.write_str("a formatted date string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
        match ymd(v) {
            Some(d) => Ok(Date(d)),
            None => v
                .parse()
                .map(Date)
                .map_err(|e| E::custom(format_args!("date {v:?}: {e}"))),
        }
    }
}

/// `YYYY-MM-DD`, four, two and two ASCII digits, when it is a date: what chrono's parser
/// makes of it. Anything else (another form, or a day that does not exist) is left to chrono,
/// for its answer and its error.
fn ymd(s: &str) -> Option<NaiveDate> {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = s.as_bytes() else {
        return None;
    };
    let digit = |c: u8| c.is_ascii_digit().then(|| u32::from(c - b'0'));
    let year = ((digit(y0)? * 10 + digit(y1)?) * 10 + digit(y2)?) * 10 + digit(y3)?;
    let month = digit(m0)? * 10 + digit(m1)?;
    let day = digit(d0)? * 10 + digit(d1)?;
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

struct BatchLine {
    format: u64,
    id: String,
}

struct CardLine {
    serial: String,
    person: PersonId,
}

strict!(BatchLine {
    format: value u64,
    id: value String,
});

strict!(CardLine {
    serial: value String,
    person: value PersonId,
});

strict!(Person {
    id: value PersonId,
    name: value String,
    name_kana: value String,
    birth_date: date NaiveDate,
    sex: value Sex,
    address: object Address,
    coverage: object Coverage,
});

strict!(Address {
    postal_code: value String,
    prefecture: value String,
    municipality: value String,
    street: value String,
});

strict!(Coverage {
    insurer_number: value String,
    insurer_name: value String,
    symbol: value String,
    number: value String,
    branch: value String,
});

strict!(Institution {
    code: value String,
    name: value String,
    kind: value InstitutionKind,
});

strict!(Visit {
    service_date: date NaiveDate,
    available_on: date NaiveDate,
    institution: object Institution,
    department: value String,
    setting: value CareSetting,
    source: value Source,
});

strict!(DrugRef {
    yj: value YjCode,
    receipt_code: nullable ReceiptDrugCode,
    name: value String,
    generic_name: value String,
    strength: value String,
});

strict!(Dispensing {
    service_date: date NaiveDate,
    available_on: date NaiveDate,
    drug: object DrugRef,
    daily_quantity: value f64,
    unit: value String,
    days: value u32,
    prescriber: object Institution,
    pharmacy: nullable_object Institution,
    source: value Source,
});

strict!(Procedure {
    service_date: date NaiveDate,
    available_on: date NaiveDate,
    kind: value ProcedureKind,
    code: value String,
    name: value String,
    institution: object Institution,
    source: value Source,
});

strict!(Dialysis {
    service_date: date NaiveDate,
    available_on: date NaiveDate,
    modality: value DialysisModality,
    sessions: value u32,
    institution: object Institution,
    source: value Source,
});

strict!(HealthCheck {
    service_date: date NaiveDate,
    available_on: date NaiveDate,
    height_cm: value f64,
    weight_kg: value f64,
    systolic_mmhg: value u16,
    diastolic_mmhg: value u16,
    hba1c_percent: nullable f64,
    ldl_mg_dl: nullable u16,
    egfr: nullable f64,
    urine_protein: value String,
    source: value Source,
});

/// The checks on a parsed line's values, in the order they have always been made.
fn check(parsed: Parsed) -> Result<Line, String> {
    match parsed {
        Parsed::Batch(b) => {
            if b.format != FORMAT {
                return Err(format!(
                    "batch: unsupported format {} (this reader reads format {FORMAT})",
                    b.format
                ));
            }
            check_batch_id(&b.id).map_err(|e| format!("batch: {e}"))?;
            Ok(Line::Batch(b.id))
        }
        Parsed::Person(p) => {
            positive("person", "id", p.id)?;
            in_years("person", "birth_date", p.birth_date)?;
            Ok(Line::Person(p))
        }
        Parsed::Card(c) => {
            check_serial(&c.serial).map_err(|e| format!("card: {e}"))?;
            positive("card", "person", c.person)?;
            Ok(Line::Card(CardLink {
                serial: c.serial,
                person: c.person,
            }))
        }
        Parsed::Record(r) => check_record(r).map(Line::Record),
    }
}

fn check_record(r: ClaimRecord) -> Result<ClaimRecord, String> {
    let kind = r.record.kind();
    positive(kind, "person", r.person)?;
    // Dates a store keeps as text sort as dates only within four-digit years.
    in_years(kind, "service_date", r.record.service_date())?;
    in_years(kind, "available_on", available_on(&r.record))?;
    // Institution codes are keys the store indexes: bounded here, for both engines.
    let institutions: [(&str, Option<&Institution>); 2] = match &r.record {
        Record::Visit(v) => [("institution", Some(&v.institution)), ("", None)],
        Record::Dispensing(d) => [
            ("prescriber", Some(&d.prescriber)),
            ("pharmacy", d.pharmacy.as_ref()),
        ],
        Record::Procedure(p) => [("institution", Some(&p.institution)), ("", None)],
        Record::Dialysis(d) => [("institution", Some(&d.institution)), ("", None)],
        Record::HealthCheck(_) => [("", None), ("", None)],
    };
    for (field, institution) in institutions {
        if let Some(i) = institution
            && i.code.chars().count() > crate::MAX_CODE_CHARS
        {
            return Err(format!(
                "{kind}: {field} code is longer than {} characters",
                crate::MAX_CODE_CHARS
            ));
        }
    }
    // The domain's own check, on a record set of this one record.
    let ClaimRecord {
        person,
        seq,
        record,
    } = r;
    let record = match record {
        Record::Visit(v) => domain_check(kind, v, |r| &mut r.visits, Record::Visit),
        Record::Dispensing(d) => domain_check(kind, d, |r| &mut r.dispensings, Record::Dispensing),
        Record::Procedure(p) => domain_check(kind, p, |r| &mut r.procedures, Record::Procedure),
        Record::Dialysis(d) => domain_check(kind, d, |r| &mut r.dialysis, Record::Dialysis),
        Record::HealthCheck(h) => {
            domain_check(kind, h, |r| &mut r.health_checks, Record::HealthCheck)
        }
    }?;
    Ok(ClaimRecord {
        person,
        seq,
        record,
    })
}

fn available_on(r: &Record) -> NaiveDate {
    match r {
        Record::Visit(v) => v.available_on,
        Record::Dispensing(d) => d.available_on,
        Record::Procedure(p) => p.available_on,
        Record::Dialysis(d) => d.available_on,
        Record::HealthCheck(h) => h.available_on,
    }
}

/// [`MedicalRecords::check`] on a record set of the one record.
fn domain_check<T>(
    kind: &str,
    rec: T,
    place: fn(&mut MedicalRecords) -> &mut Vec<T>,
    wrap: fn(T) -> Record,
) -> Result<Record, String> {
    let mut one = MedicalRecords::default();
    place(&mut one).push(rec);
    one.check().map_err(|e| format!("{kind}: {e}"))?;
    place(&mut one)
        .pop()
        .map(wrap)
        .ok_or_else(|| format!("{kind}: record lost while checking it"))
}

fn positive(kind: &str, field: &str, id: PersonId) -> Result<(), String> {
    if id.0 > 0 {
        Ok(())
    } else {
        Err(format!("{kind}: {field} must be positive (got {})", id.0))
    }
}

/// The years a date may fall in.
pub(crate) const YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

fn in_years(kind: &str, field: &str, d: NaiveDate) -> Result<(), String> {
    use chrono::Datelike;
    if YEARS.contains(&d.year()) {
        Ok(())
    } else {
        Err(format!(
            "{kind}: {field} {d} is outside the years {}–{}",
            YEARS.start(),
            YEARS.end()
        ))
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const VISIT: &str = r#"{"type":"visit","person":1,"seq":0,"service_date":"2022-05-24","available_on":"2022-06-25","institution":{"code":"1419000144","name":"久地整形外科","kind":"clinic"},"department":"整形外科","setting":"outpatient","source":"claims"}"#;

    fn problem(line: &str) -> String {
        match parse(line.as_bytes()) {
            Ok(_) => panic!("accepted {line}"),
            Err(e) => e,
        }
    }

    fn record(line: &str) -> ClaimRecord {
        match parse(line.as_bytes()) {
            Ok(Line::Record(r)) => r,
            Ok(_) => panic!("not a record: {line}"),
            Err(e) => panic!("{e}: {line}"),
        }
    }

    #[test]
    fn type_may_come_anywhere() {
        let first = record(VISIT);
        let last = VISIT.replacen(r#""type":"visit","#, "", 1).replacen(
            r#""source":"claims"}"#,
            r#""source":"claims","type":"visit"}"#,
            1,
        );
        assert!(!last.starts_with(r#"{"type""#));
        assert_eq!(record(&last), first);
        // The same checks on the slow path, with the same words.
        let unknown = last.replacen(r#""seq":0,"#, r#""seq":0,"floor":3,"#, 1);
        assert_eq!(problem(&unknown), r#"visit: unknown field "floor""#);
        let nested = last.replacen(r#""kind":"clinic""#, r#""kind":"clinic","x":1"#, 1);
        assert_eq!(problem(&nested), r#"visit: unknown field "institution.x""#);
        let missing = last.replacen(r#""department":"整形外科","#, "", 1);
        assert_eq!(problem(&missing), "visit: missing field `department`");
        let late = last.replacen(
            r#""service_date":"2022-05-24""#,
            r#""service_date":"2300-01-01""#,
            1,
        );
        assert_eq!(
            problem(&late),
            "visit: service_date 2300-01-01 is outside the years 1900–2199"
        );
        let twice = last.replacen(r#""seq":0,"#, r#""seq":0,"seq":1,"#, 1);
        assert!(problem(&twice).contains(r#"field "seq" given twice"#));
    }

    #[test]
    fn escaped_keys_and_values_read_as_their_text() {
        let escaped = VISIT.replacen(r#""seq""#, r#""s\u0065q""#, 1).replacen(
            r#""type":"visit""#,
            r#""type":"vis\u0069t""#,
            1,
        );
        assert_eq!(record(&escaped), record(VISIT));
    }

    #[test]
    fn nul_is_refused_escaped_or_raw() {
        let escaped = VISIT.replacen("整形外科\"", "整形外科\\u0000\"", 1);
        assert_eq!(
            problem(&escaped),
            "a NUL character (\\u0000) is not allowed"
        );
        // Also on the slow path, and in a key.
        let late =
            escaped
                .replacen(r#""type":"visit","#, "", 1)
                .replacen('}', r#"},"type":"visit""#, 1);
        assert!(problem(&late).contains("NUL"));
        assert!(problem(&VISIT.replacen("\"seq\"", "\"s\\u0000\"", 1)).contains("NUL"));
        // A raw NUL byte is a control character JSON does not allow.
        let raw = VISIT.replacen("整形外科\"", "整形外科\0\"", 1);
        assert!(
            problem(&raw).starts_with("invalid JSON at column"),
            "{}",
            problem(&raw)
        );
    }

    #[test]
    fn an_object_written_as_an_array_is_refused() {
        let array = VISIT.replacen(
            r#"{"code":"1419000144","name":"久地整形外科","kind":"clinic"}"#,
            r#"["1419000144","久地整形外科","clinic"]"#,
            1,
        );
        assert!(problem(&array).starts_with("visit: invalid type: sequence"));
    }

    #[test]
    fn a_field_given_twice_in_an_object_is_refused() {
        let twice = VISIT.replacen(
            r#""kind":"clinic""#,
            r#""kind":"clinic","kind":"clinic""#,
            1,
        );
        assert!(problem(&twice).contains(r#"field "kind" given twice"#));
    }

    #[test]
    fn several_problems_the_first_by_the_old_order() {
        // Invalid JSON after an unknown field: the JSON is reported, as the old reader did.
        let bad = VISIT
            .replacen(r#""seq":0,"#, r#""floor":3,"seq":0,"#, 1)
            .replacen('}', ",}", 1);
        assert!(
            problem(&bad).starts_with("invalid JSON at column"),
            "{}",
            problem(&bad)
        );
    }

    #[test]
    fn dates_read_as_chrono_reads_them() {
        let mut cases: Vec<String> = vec![
            "2022-05-24".into(),
            "0000-01-01".into(),
            "9999-12-31".into(),
            "2024-02-29".into(),
            "2023-02-29".into(),
            "2022-5-24".into(),
            "+2022-05-24".into(),
            " 2022-05-24".into(),
            "2022-05-24 ".into(),
            "20220524".into(),
            "2022-05-2x".into(),
            "２０２２-05-24".into(),
            String::new(),
        ];
        for m in 0..=13 {
            for d in 0..=32 {
                cases.push(format!("2023-{m:02}-{d:02}"));
                cases.push(format!("1900-{m:02}-{d:02}"));
            }
        }
        for s in cases {
            let chrono = s
                .parse::<NaiveDate>()
                .map_err(|e| format!("date {s:?}: {e}"));
            let ours = DateVisitor
                .visit_str::<serde_json::Error>(&s)
                .map(|d| d.0)
                .map_err(|e| e.to_string());
            assert_eq!(ours, chrono, "{s:?}");
        }
    }
}

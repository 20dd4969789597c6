//! Reading and writing domain records as rows.

use chrono::NaiveDate;
use myna_domain::access::{AccessEntry, ChainedEntry, Consent, Hash32, Purpose, Viewer, chain};
use myna_domain::codes::{ReceiptDrugCode, YjCode};
use myna_domain::person::{Address, Coverage, Person, PersonId, Sex};
use myna_domain::records::*;
use myna_domain::summary::{FetchPlan, View};
pub(crate) use myna_store::columns::corrupt;
use myna_store::columns::{Masters, institution_kind, institution_kind_str, product_conflict};
use myna_store::{
    ChainPosition, HospitalReadLogged, HospitalReadReport, PersonRecordSet, StoreError,
    hospital_read_entry, hospital_read_logged_before, name_from_master,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A record insert's error: its key already held is the record's fault, not an outage.
fn record_err(person: i64, e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::InvalidRecord {
                person,
                problem: "a record with this key (service date, seq) is already held".into(),
            }
        }
        _ => db_err(e),
    }
}

/// Loads the reference names into memory (the writer keeps them; loads add to them).
pub(crate) fn load_masters(conn: &Connection) -> Result<Masters, StoreError> {
    let mut m = Masters::default();
    let mut stmt = conn
        .prepare("SELECT code, name, kind FROM institution")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(db_err)?;
    for row in rows {
        let (code, name, k) = row.map_err(db_err)?;
        m.institutions.insert(
            code.clone(),
            Institution {
                code,
                name,
                kind: institution_kind(&k)?,
            },
        );
    }
    // Names by YJ code (records without a レセ電 code), and by product.
    m.drugs = drug_refs(conn, &format!("SELECT yj, {DRUG_COLUMNS} FROM drug"))?;
    m.products = drug_refs(
        conn,
        &format!("SELECT receipt_code, {DRUG_COLUMNS} FROM drug_product"),
    )?;
    Ok(m)
}

const DRUG_COLUMNS: &str = "yj, receipt_code, name, generic_name, strength";

/// Named drugs keyed by the first column; the others are [`DRUG_COLUMNS`].
fn drug_refs(conn: &Connection, sql: &str) -> Result<HashMap<String, DrugRef>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let (key, drug) = drug_ref(row)?;
        out.insert(key, drug);
    }
    Ok(out)
}

/// A drug row: its key, then [`DRUG_COLUMNS`].
fn drug_ref(r: &Row<'_>) -> Result<(String, DrugRef), StoreError> {
    let receipt: Option<String> = col(r, 2)?;
    Ok((
        col(r, 0)?,
        DrugRef {
            yj: YjCode::parse(&col::<String>(r, 1)?).map_err(corrupt)?,
            receipt_code: receipt
                .map(|r| ReceiptDrugCode::parse(&r))
                .transpose()
                .map_err(corrupt)?,
            name: col(r, 3)?,
            generic_name: col(r, 4)?,
            strength: col(r, 5)?,
        },
    ))
}

/// Institution and drug names for the reads of accesses, on any connection. Loaded whole at
/// open; a code it lacks (added since, by this store's writer or another process) is read from
/// the reading connection and kept. The masters are only ever added to (`ON CONFLICT DO
/// NOTHING`), so a kept name stays right; a code the masters lack is not kept.
pub(crate) struct Names(std::sync::RwLock<Masters>);

impl Names {
    pub(crate) fn new(masters: Masters) -> Self {
        Self(std::sync::RwLock::new(masters))
    }

    fn cached<T>(&self, get: impl FnOnce(&Masters) -> Option<T>) -> Option<T> {
        // A panic elsewhere while holding the lock leaves entries that were each written whole.
        get(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn keep(&self, put: impl FnOnce(&mut Masters)) {
        put(&mut self.0.write().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn institution(
        &self,
        conn: &Connection,
        code: &str,
    ) -> Result<Institution, StoreError> {
        if let Some(i) = self.cached(|m| m.institutions.get(code).cloned()) {
            return Ok(i);
        }
        let row = collect(
            conn,
            "SELECT name, kind FROM institution WHERE code = ?1",
            [code],
            |r| {
                Ok(Institution {
                    code: code.to_owned(),
                    name: col(r, 0)?,
                    kind: institution_kind(&col::<String>(r, 1)?)?,
                })
            },
        )?
        .pop();
        match row {
            Some(i) => {
                self.keep(|m| {
                    m.institutions.insert(code.to_owned(), i.clone());
                });
                Ok(i)
            }
            None => Ok(Masters::default().institution(code)),
        }
    }

    /// The dispensed product: by its レセ電 code when the record has one, else by YJ code.
    pub(crate) fn dispensed(
        &self,
        conn: &Connection,
        yj: &str,
        receipt: Option<&str>,
    ) -> Result<DrugRef, StoreError> {
        if let Some(code) = receipt {
            if let Some(d) = self.cached(|m| m.products.get(code).cloned()) {
                return Ok(d);
            }
            let sql = format!(
                "SELECT receipt_code, {DRUG_COLUMNS} FROM drug_product WHERE receipt_code = ?1"
            );
            if let Some(d) = self.read_drug(conn, &sql, code, |m| &mut m.products)? {
                return Ok(d);
            }
        }
        if let Some(d) = self.cached(|m| m.drugs.get(yj).cloned()) {
            return Ok(d);
        }
        let sql = format!("SELECT yj, {DRUG_COLUMNS} FROM drug WHERE yj = ?1");
        match self.read_drug(conn, &sql, yj, |m| &mut m.drugs)? {
            Some(d) => Ok(d),
            None => Masters::default().drug(yj),
        }
    }

    fn read_drug(
        &self,
        conn: &Connection,
        sql: &str,
        code: &str,
        table: impl FnOnce(&mut Masters) -> &mut HashMap<String, DrugRef>,
    ) -> Result<Option<DrugRef>, StoreError> {
        let Some((key, d)) = collect(conn, sql, [code], drug_ref)?.pop() else {
            return Ok(None);
        };
        self.keep(|m| {
            table(m).insert(key, d.clone());
        });
        Ok(Some(d))
    }
}

/// Inserts persons with their records, institutions and drugs. Caller holds the transaction.
pub(crate) fn insert_persons(
    conn: &Connection,
    masters: &mut Masters,
    persons: &[PersonRecordSet],
) -> Result<(), StoreError> {
    let w = RowWriter::new(conn)?;
    for set in persons {
        let p = &set.person;
        let id = p.id.0;
        w.person(p, false)?;
        w.card(&set.cert_serial, id)?;
        let r = &set.records;
        for (seq, v) in r.visits.iter().enumerate() {
            w.visit(masters, id, seq as i64, v)?;
        }
        for (seq, d) in r.dispensings.iter().enumerate() {
            w.dispensing(masters, id, seq as i64, d)?;
        }
        for (seq, p) in r.procedures.iter().enumerate() {
            w.procedure(masters, id, seq as i64, p)?;
        }
        for (seq, d) in r.dialysis.iter().enumerate() {
            w.dialysis(masters, id, seq as i64, d)?;
        }
        for (seq, h) in r.health_checks.iter().enumerate() {
            w.health_check(id, seq as i64, h)?;
        }
    }
    Ok(())
}

macro_rules! person_insert {
    () => {
        "INSERT INTO person (id, name, name_kana, birth_date, sex, postal_code, prefecture, \
         municipality, street, insurer_number, insurer_name, insured_symbol, insured_number, \
         insured_branch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    };
}
const PERSON_INSERT: &str = person_insert!();
const PERSON_UPSERT: &str = concat!(
    person_insert!(),
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_kana = excluded.name_kana, \
     birth_date = excluded.birth_date, sex = excluded.sex, postal_code = excluded.postal_code, \
     prefecture = excluded.prefecture, municipality = excluded.municipality, \
     street = excluded.street, insurer_number = excluded.insurer_number, \
     insurer_name = excluded.insurer_name, insured_symbol = excluded.insured_symbol, \
     insured_number = excluded.insured_number, insured_branch = excluded.insured_branch"
);

/// The prepared inserts of persons, card links and records (with the institutions and drugs
/// they name), for a load or an import. Caller holds the transaction.
pub(crate) struct RowWriter<'c> {
    conn: &'c Connection,
    /// Tables named with this prefix (`baseline_` for the import benchmark's baseline), each
    /// statement's text rewritten once.
    prefix: &'static str,
    prefixed: std::cell::RefCell<HashMap<&'static str, String>>,
}

impl<'c> RowWriter<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self::with_prefix(conn, ""))
    }

    pub(crate) fn with_prefix(conn: &'c Connection, prefix: &'static str) -> Self {
        Self {
            conn,
            prefix,
            prefixed: Default::default(),
        }
    }

    fn stmt(&self, sql: &'static str) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
        if self.prefix.is_empty() {
            return self.conn.prepare_cached(sql).map_err(db_err);
        }
        let mut prefixed = self.prefixed.borrow_mut();
        let text = prefixed.entry(sql).or_insert_with(|| {
            sql.replacen("INSERT INTO ", &format!("INSERT INTO {}", self.prefix), 1)
        });
        self.conn.prepare_cached(text).map_err(db_err)
    }

    fn institution(&self, i: &Institution, masters: &mut Masters) -> Result<(), StoreError> {
        if !masters.institutions.contains_key(&i.code) {
            self.stmt(
                "INSERT INTO institution (code, name, kind) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (code) DO NOTHING",
            )?
            .execute(params![i.code, i.name, institution_kind_str(i.kind)])
            .map_err(db_err)?;
            masters.institutions.insert(i.code.clone(), i.clone());
        }
        Ok(())
    }

    /// A person's demographics; `update` replaces those of a person already held.
    pub(crate) fn person(&self, p: &Person, update: bool) -> Result<(), StoreError> {
        self.stmt(if update { PERSON_UPSERT } else { PERSON_INSERT })?
            .execute(params![
                p.id.0,
                p.name,
                p.name_kana,
                Day(p.birth_date),
                p.sex.code(),
                p.address.postal_code,
                p.address.prefecture,
                p.address.municipality,
                p.address.street,
                p.coverage.insurer_number,
                p.coverage.insurer_name,
                p.coverage.symbol,
                p.coverage.number,
                p.coverage.branch
            ])
            .map_err(db_err)?;
        Ok(())
    }

    pub(crate) fn card(&self, serial: &str, person: i64) -> Result<(), StoreError> {
        self.stmt("INSERT INTO auth_cert (serial, person_id) VALUES (?1, ?2)")?
            .execute(params![serial, person])
            .map_err(db_err)?;
        Ok(())
    }

    pub(crate) fn visit(
        &self,
        masters: &mut Masters,
        id: i64,
        seq: i64,
        v: &Visit,
    ) -> Result<(), StoreError> {
        self.institution(&v.institution, masters)?;
        self.stmt(
            "INSERT INTO visit (person_id, service_date, seq, available_on, institution_code, \
             department, setting, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            id,
            Day(v.service_date),
            seq,
            Day(v.available_on),
            v.institution.code,
            v.department,
            v.setting.int_code(),
            v.source.int_code()
        ])
        .map_err(|e| record_err(id, e))?;
        Ok(())
    }

    pub(crate) fn dispensing(
        &self,
        masters: &mut Masters,
        id: i64,
        seq: i64,
        d: &Dispensing,
    ) -> Result<(), StoreError> {
        self.institution(&d.prescriber, masters)?;
        if let Some(ph) = &d.pharmacy {
            self.institution(ph, masters)?;
        }
        if let Some(receipt) = &d.drug.receipt_code {
            match masters.products.get(receipt.as_str()) {
                Some(known) => {
                    if let Some(conflict) = product_conflict(id, d, known) {
                        return Err(conflict);
                    }
                }
                None => {
                    self.stmt(
                        "INSERT INTO drug_product (receipt_code, yj, name, generic_name, strength) \
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (receipt_code) DO NOTHING",
                    )?
                    .execute(params![
                        receipt.as_str(),
                        d.drug.yj.as_str(),
                        d.drug.name,
                        d.drug.generic_name,
                        d.drug.strength
                    ])
                    .map_err(db_err)?;
                    masters
                        .products
                        .insert(receipt.as_str().to_owned(), d.drug.clone());
                }
            }
        }
        if !masters.drugs.contains_key(d.drug.yj.as_str()) {
            self.stmt(
                "INSERT INTO drug (yj, receipt_code, name, generic_name, strength) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (yj) DO NOTHING",
            )?
            .execute(params![
                d.drug.yj.as_str(),
                d.drug.receipt_code.as_ref().map(|c| c.as_str()),
                d.drug.name,
                d.drug.generic_name,
                d.drug.strength
            ])
            .map_err(db_err)?;
            masters.drugs.insert(d.drug.yj.to_string(), d.drug.clone());
        }
        self.stmt(
            "INSERT INTO dispensing (person_id, service_date, seq, available_on, yj, \
             daily_quantity, unit, days, prescriber_code, pharmacy_code, source, receipt_code) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            id,
            Day(d.service_date),
            seq,
            Day(d.available_on),
            d.drug.yj.as_str(),
            d.daily_quantity,
            d.unit,
            d.days,
            d.prescriber.code,
            d.pharmacy.as_ref().map(|p| p.code.as_str()),
            d.source.int_code(),
            d.drug.receipt_code.as_ref().map(|c| c.as_str())
        ])
        .map_err(|e| record_err(id, e))?;
        Ok(())
    }

    pub(crate) fn procedure(
        &self,
        masters: &mut Masters,
        id: i64,
        seq: i64,
        p: &Procedure,
    ) -> Result<(), StoreError> {
        self.institution(&p.institution, masters)?;
        self.stmt(
            "INSERT INTO procedure_record (person_id, service_date, seq, available_on, kind, \
             code, name, institution_code, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            id,
            Day(p.service_date),
            seq,
            Day(p.available_on),
            p.kind.int_code(),
            p.code,
            p.name,
            p.institution.code,
            p.source.int_code()
        ])
        .map_err(|e| record_err(id, e))?;
        Ok(())
    }

    pub(crate) fn dialysis(
        &self,
        masters: &mut Masters,
        id: i64,
        seq: i64,
        d: &Dialysis,
    ) -> Result<(), StoreError> {
        self.institution(&d.institution, masters)?;
        self.stmt(
            "INSERT INTO dialysis (person_id, service_date, seq, available_on, modality, \
             sessions, institution_code, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            id,
            Day(d.service_date),
            seq,
            Day(d.available_on),
            d.modality.int_code(),
            d.sessions,
            d.institution.code,
            d.source.int_code()
        ])
        .map_err(|e| record_err(id, e))?;
        Ok(())
    }

    pub(crate) fn health_check(
        &self,
        id: i64,
        seq: i64,
        h: &HealthCheck,
    ) -> Result<(), StoreError> {
        self.stmt(
            "INSERT INTO health_check (person_id, service_date, seq, available_on, height_cm, \
             weight_kg, systolic_mmhg, diastolic_mmhg, hba1c_percent, ldl_mg_dl, egfr, \
             urine_protein, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            id,
            Day(h.service_date),
            seq,
            Day(h.available_on),
            h.height_cm,
            h.weight_kg,
            h.systolic_mmhg,
            h.diastolic_mmhg,
            h.hba1c_percent,
            h.ldl_mg_dl,
            h.egfr,
            h.urine_protein,
            h.source.int_code()
        ])
        .map_err(|e| record_err(id, e))?;
        Ok(())
    }
}

pub(crate) fn read_person(conn: &Connection, id: PersonId) -> Result<Person, StoreError> {
    collect(
        conn,
        "SELECT name, name_kana, birth_date, sex, postal_code, prefecture, municipality, street, \
         insurer_number, insurer_name, insured_symbol, insured_number, insured_branch FROM person WHERE id = ?1",
        [id.0],
        |r| {
            Ok(Person {
                id,
                name: col(r, 0)?,
                name_kana: col(r, 1)?,
                birth_date: date_col(r, 2)?,
                sex: Sex::from_code(col(r, 3)?).ok_or_else(|| corrupt("bad sex code"))?,
                address: Address {
                    postal_code: col(r, 4)?,
                    prefecture: col(r, 5)?,
                    municipality: col(r, 6)?,
                    street: col(r, 7)?,
                },
                coverage: Coverage {
                    insurer_number: col(r, 8)?,
                    insurer_name: col(r, 9)?,
                    symbol: col(r, 10)?,
                    number: col(r, 11)?,
                    branch: col(r, 12)?,
                },
            })
        },
    )?
    .pop()
    .ok_or_else(|| corrupt(format!("certificate links to missing person {}", id.0)))
}

/// Runs a query and decodes each row with `decode`, mapping every failure to a store error.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    collect_at_most(conn, sql, params, usize::MAX, decode)
}

/// `collect`, stopping after `limit` rows.
fn collect_at_most<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    limit: usize,
    decode: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = stmt.query(params).map_err(db_err)?;
    let mut out = Vec::new();
    while out.len() < limit
        && let Some(row) = rows.next().map_err(db_err)?
    {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// A column of the expected type. A value of the wrong type or range means the stored data is
/// bad (500 `internal`), not that the database is unreachable (503 `unavailable`).
fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, i: usize) -> Result<T, StoreError> {
    row.get(i).map_err(|e| match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => corrupt(e),
        other => db_err(other),
    })
}

fn date_col(row: &Row<'_>, i: usize) -> Result<NaiveDate, StoreError> {
    let days = col::<i64>(row, i)?;
    Day::from_days(days).ok_or_else(|| corrupt(format!("day {days} is out of range")))
}

fn code_col<T: IntCode>(row: &Row<'_>, i: usize) -> Result<T, StoreError> {
    let code = col::<i64>(row, i)?;
    T::from_int_code(code).ok_or_else(|| {
        corrupt(format!(
            "{code} is not a code of {}",
            std::any::type_name::<T>()
        ))
    })
}

/// A date as the schema stores it: days since 1970-01-01 (an INTEGER, 2 bytes until 2059).
pub(crate) struct Day(pub(crate) NaiveDate);

impl Day {
    const EPOCH: NaiveDate = NaiveDate::from_epoch_days(0).expect("1970-01-01 is a date");

    fn from_days(days: i64) -> Option<NaiveDate> {
        Self::EPOCH.checked_add_signed(chrono::TimeDelta::try_days(days)?)
    }
}

impl rusqlite::ToSql for Day {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok((self.0 - Self::EPOCH).num_days().into())
    }
}

/// A records' enum as the schema stores it: a small integer, fixed forever (a new variant
/// takes a new number; V5 maps the older text values to these).
pub(crate) trait IntCode: Sized {
    fn int_code(self) -> i64;
    fn from_int_code(code: i64) -> Option<Self>;
}

/// One list serves both directions, and the `match` on the variant is exhaustive.
macro_rules! int_codes {
    ($t:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        impl IntCode for $t {
            fn int_code(self) -> i64 {
                match self {
                    $($t::$variant => $code,)+
                }
            }
            fn from_int_code(code: i64) -> Option<Self> {
                match code {
                    $($code => Some($t::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

int_codes!(CareSetting { Outpatient = 0, Inpatient = 1 });
int_codes!(Source { Claims = 0, EPrescription = 1, Insurer = 2 });
int_codes!(ProcedureKind { Surgery = 0, Procedure = 1 });
int_codes!(DialysisModality { Hemodialysis = 0, Peritoneal = 1 });

/// Reads the records a view needs, per the fetch plan.
pub(crate) fn read_records(
    conn: &Connection,
    names: &Names,
    id: PersonId,
    plan: &FetchPlan,
    today: NaiveDate,
) -> Result<MedicalRecords, StoreError> {
    let visits = collect(
        conn,
        "SELECT service_date, available_on, institution_code, department, setting, source FROM visit \
         WHERE person_id = ?1 AND service_date >= ?2 ORDER BY service_date, seq",
        params![id.0, Day(plan.visits_from)],
        |r| {
            Ok(Visit {
                service_date: date_col(r, 0)?,
                available_on: date_col(r, 1)?,
                institution: names.institution(conn, &col::<String>(r, 2)?)?,
                department: col(r, 3)?,
                setting: code_col(r, 4)?,
                source: code_col(r, 5)?,
            })
        },
    )?;
    let dispensings = collect(
        conn,
        "SELECT service_date, available_on, yj, daily_quantity, unit, days, prescriber_code, pharmacy_code, source, \
         receipt_code FROM dispensing WHERE person_id = ?1 AND service_date >= ?2 ORDER BY service_date, seq",
        params![id.0, Day(plan.dispensings_from)],
        |r| {
            Ok(Dispensing {
                service_date: date_col(r, 0)?,
                available_on: date_col(r, 1)?,
                drug: names.dispensed(
                    conn,
                    &col::<String>(r, 2)?,
                    col::<Option<String>>(r, 9)?.as_deref(),
                )?,
                daily_quantity: col(r, 3)?,
                unit: col(r, 4)?,
                days: col(r, 5)?,
                prescriber: names.institution(conn, &col::<String>(r, 6)?)?,
                pharmacy: col::<Option<String>>(r, 7)?
                    .map(|c| names.institution(conn, &c))
                    .transpose()?,
                source: code_col(r, 8)?,
            })
        },
    )?;
    let procedures = collect(
        conn,
        "SELECT service_date, available_on, kind, code, name, institution_code, source FROM procedure_record \
         WHERE person_id = ?1 AND service_date >= ?2 ORDER BY service_date, seq",
        params![id.0, Day(plan.procedures_from)],
        |r| {
            Ok(Procedure {
                service_date: date_col(r, 0)?,
                available_on: date_col(r, 1)?,
                kind: code_col(r, 2)?,
                code: col(r, 3)?,
                name: col(r, 4)?,
                institution: names.institution(conn, &col::<String>(r, 5)?)?,
                source: code_col(r, 6)?,
            })
        },
    )?;
    let dialysis = collect(
        conn,
        "SELECT service_date, available_on, modality, sessions, institution_code, source FROM dialysis \
         WHERE person_id = ?1 AND service_date >= ?2 ORDER BY service_date, seq",
        params![id.0, Day(plan.dialysis_from)],
        |r| {
            Ok(Dialysis {
                service_date: date_col(r, 0)?,
                available_on: date_col(r, 1)?,
                modality: code_col(r, 2)?,
                sessions: col(r, 3)?,
                institution: names.institution(conn, &col::<String>(r, 4)?)?,
                source: code_col(r, 5)?,
            })
        },
    )?;
    // The newest rounds: the rows are read newest first and the reading stops after the
    // plan's count. Not `LIMIT ?`: SQLite re-prepares a statement whose LIMIT is a bound
    // parameter each time it is bound (13 % of the writer's time in a profile).
    let mut health_checks = collect_at_most(
        conn,
        "SELECT service_date, available_on, height_cm, weight_kg, systolic_mmhg, diastolic_mmhg, hba1c_percent, \
         ldl_mg_dl, egfr, urine_protein, source FROM health_check WHERE person_id = ?1 AND available_on <= ?2 \
         ORDER BY service_date DESC, seq DESC",
        params![id.0, Day(today)],
        usize::try_from(plan.health_check_rounds).unwrap_or(usize::MAX),
        |r| {
            Ok(HealthCheck {
                service_date: date_col(r, 0)?,
                available_on: date_col(r, 1)?,
                height_cm: col(r, 2)?,
                weight_kg: col(r, 3)?,
                systolic_mmhg: col(r, 4)?,
                diastolic_mmhg: col(r, 5)?,
                hba1c_percent: col(r, 6)?,
                ldl_mg_dl: col(r, 7)?,
                egfr: col(r, 8)?,
                urine_protein: col(r, 9)?,
                source: code_col(r, 10)?,
            })
        },
    )?;
    health_checks.reverse();
    Ok(MedicalRecords {
        visits,
        dispensings,
        procedures,
        dialysis,
        health_checks,
    })
}

fn hash_from_blob(seq: i64, bytes: Vec<u8>) -> Result<Hash32, String> {
    bytes
        .try_into()
        .map_err(|_| format!("hash of entry {seq} is not 32 bytes"))
}

/// The log's newest entry: its place and hash.
pub(crate) fn access_head(conn: &Connection) -> Result<Option<(i64, Hash32)>, StoreError> {
    let head = conn
        .prepare_cached("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1")
        .map_err(db_err)?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .optional()
        .map_err(db_err)?;
    head.map(|(seq, h)| Ok((seq, hash_from_blob(seq, h).map_err(corrupt)?)))
        .transpose()
}

/// The hash of the entry at `seq`, if it is held.
pub(crate) fn access_hash(conn: &Connection, seq: i64) -> Result<Option<Hash32>, StoreError> {
    let hash = conn
        .prepare_cached("SELECT hash FROM access_log WHERE seq = ?1")
        .map_err(db_err)?
        .query_row([seq], |r| r.get::<_, Vec<u8>>(0))
        .optional()
        .map_err(db_err)?;
    hash.map(|h| hash_from_blob(seq, h).map_err(corrupt))
        .transpose()
}

pub(crate) const ACCESS_COLUMNS: &str = "seq, at_ms, organisation_id, viewer_organisation, viewer_team, viewer_crew_member, \
     incident_ref, person_id, cert_serial, purpose, consent, exception_reason, view, prev_hash, hash, \
     hospital_source_access_id, hospital_institution_code, hospital_name, hospital_read_at_ms, \
     hospital_ems_view_seq";

/// Decodes one access_log row; a row that cannot be decoded is reported, not hidden.
pub(crate) fn chained_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<Result<ChainedEntry, (i64, String)>> {
    let seq: i64 = r.get(0)?;
    let purpose: String = r.get(9)?;
    let consent: String = r.get(10)?;
    let reason: Option<String> = r.get(11)?;
    let view: String = r.get(12)?;
    let prev: Vec<u8> = r.get(13)?;
    let hash: Vec<u8> = r.get(14)?;
    let hospital_read = match myna_store::columns::hospital_read(
        r.get(15)?,
        r.get(16)?,
        r.get(17)?,
        r.get(18)?,
        r.get(19)?,
    ) {
        Ok(h) => h,
        Err(problem) => return Ok(Err((seq, problem))),
    };
    let entry = AccessEntry {
        at_ms: r.get(1)?,
        organisation_id: r.get(2)?,
        viewer: Viewer {
            organisation: r.get(3)?,
            team: r.get(4)?,
            crew_member: r.get(5)?,
        },
        incident_ref: r.get(6)?,
        person_id: PersonId(r.get(7)?),
        cert_serial: r.get(8)?,
        purpose: match Purpose::parse(&purpose) {
            Some(p) => p,
            None => return Ok(Err((seq, format!("unknown purpose {purpose:?}")))),
        },
        consent: match Consent::from_parts(&consent, reason.as_deref()) {
            Some(c) => c,
            None => {
                return Ok(Err((
                    seq,
                    format!("unknown consent {consent:?}/{reason:?}"),
                )));
            }
        },
        view: match View::parse(&view) {
            Some(v) => v,
            None => return Ok(Err((seq, format!("unknown view {view:?}")))),
        },
        hospital_read,
        // The id is the entry's place in the one chain, hashed already.
        access_id: None,
    };
    let prev_hash = match hash_from_blob(seq, prev) {
        Ok(h) => h,
        Err(e) => return Ok(Err((seq, e))),
    };
    let hash = match hash_from_blob(seq, hash) {
        Ok(h) => h,
        Err(e) => return Ok(Err((seq, e))),
    };
    Ok(Ok(ChainedEntry {
        seq,
        entry,
        prev_hash,
        hash,
    }))
}

pub(crate) fn insert_access(conn: &Connection, e: &ChainedEntry) -> Result<(), StoreError> {
    let x = &e.entry;
    conn.prepare_cached(&format!(
        "INSERT INTO access_log ({ACCESS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17, ?18, ?19, ?20)"
    ))
    .map_err(db_err)?
    .execute(params![
        e.seq,
        x.at_ms,
        x.organisation_id,
        x.viewer.organisation,
        x.viewer.team,
        x.viewer.crew_member,
        x.incident_ref,
        x.person_id.0,
        x.cert_serial,
        x.purpose.as_str(),
        x.consent.kind_str(),
        x.consent.reason().map(|r| r.as_str()),
        x.view.as_str(),
        &e.prev_hash[..],
        &e.hash[..],
        x.hospital_read.as_ref().map(|h| h.source_access_id),
        x.hospital_read.as_ref().map(|h| h.institution_code.as_str()),
        x.hospital_read.as_ref().map(|h| h.hospital_name.as_str()),
        x.hospital_read.as_ref().map(|h| h.read_at_ms),
        x.hospital_read.as_ref().map(|h| h.ems_view_seq),
    ])
    .map_err(db_err)?;
    Ok(())
}

/// One access-log entry found by `sql` (which selects `ACCESS_COLUMNS`), if any.
fn access_entry(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<ChainedEntry>, StoreError> {
    match conn
        .prepare_cached(sql)
        .map_err(db_err)?
        .query_row(params, chained_from_row)
        .optional()
        .map_err(db_err)?
    {
        None => Ok(None),
        Some(Ok(e)) => Ok(Some(e)),
        Some(Err((seq, problem))) => Err(corrupt(format!("access-log entry {seq}: {problem}"))),
    }
}

/// `ProviderStore::record_hospital_read` inside the writer's transaction. The log's one
/// chain: an access's id is its place.
pub(crate) fn record_hospital_read(
    conn: &Connection,
    report: &HospitalReadReport,
) -> Result<HospitalReadLogged, StoreError> {
    let mut report = report.clone();
    let name = conn
        .prepare_cached("SELECT name FROM institution WHERE code = ?1")
        .map_err(db_err)?
        .query_row([&report.read.institution_code], |r| r.get::<_, String>(0))
        .optional()
        .map_err(db_err)?;
    name_from_master(&mut report, name);
    let source = access_entry(
        conn,
        &format!(
            "SELECT {ACCESS_COLUMNS} FROM access_log WHERE seq = ?1 AND organisation_id = ?2 \
             AND incident_ref = ?3 AND hospital_ems_view_seq IS NULL"
        ),
        params![
            report.read.source_access_id,
            report.organisation_id,
            report.incident_ref
        ],
    )?
    .ok_or(StoreError::UnknownAccess)?;
    let person = source.entry.person_id.0;
    let logged = conn
        .prepare_cached(
            "SELECT hospital_institution_code, seq FROM access_log WHERE person_id = ?1 \
             AND hospital_source_access_id = ?2 ORDER BY seq",
        )
        .map_err(db_err)?
        .query_map(params![person, source.seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err)?
        .collect::<Result<Vec<(String, i64)>, _>>()
        .map_err(db_err)?;
    let at = |seq: i64| ChainPosition { partition: 0, seq };
    if let Some(seq) = hospital_read_logged_before(logged, &report.read.institution_code)? {
        return Ok(HospitalReadLogged {
            access_id: seq,
            position: at(seq),
            new: false,
        });
    }
    let chained = chain(
        access_head(conn)?,
        hospital_read_entry(&source.entry, &report)?,
    );
    insert_access(conn, &chained)?;
    Ok(HospitalReadLogged {
        access_id: chained.seq,
        position: ChainPosition {
            partition: 0,
            seq: chained.seq,
        },
        new: true,
    })
}

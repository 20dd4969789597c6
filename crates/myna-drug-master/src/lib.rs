//! レセプト電算処理システム 医薬品マスター (the national claims drug master), as shipped data.
//!
//! The product embeds the full file of 2024-03-21 and the published deltas up to 2025-08-13
//! (`data/`), and builds the master as of any date by applying the deltas in date order. Every
//! drug a claim can carry is here, not only the hand-checked catalogue (`myna_domain::drugs`).
//! Pure: the files are compiled in; decoding (cp932), unzipping and parsing are computations.

use chrono::NaiveDate;
use myna_domain::codes::{ReceiptDrugCode, YjCode};
use myna_domain::records::DrugRef;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;

/// 剤形 (dosage route) as the master records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DosageForm {
    /// 内用.
    Oral,
    /// 外用.
    External,
    /// 注射.
    Injection,
    /// 歯科用.
    Dental,
}

impl DosageForm {
    /// 剤形 as the rows carry it (`3`, その他, is only on accounting entries).
    fn parse(s: &str) -> Option<Self> {
        match s {
            "1" => Some(DosageForm::Oral),
            "4" => Some(DosageForm::Injection),
            "6" => Some(DosageForm::External),
            "8" => Some(DosageForm::Dental),
            _ => None,
        }
    }
}

/// One product row of the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// 医薬品コード (9-digit レセ電 code): the row's key.
    pub receipt: ReceiptDrugCode,
    /// 薬価基準収載医薬品コード: the YJ code.
    pub yj: YjCode,
    /// 医薬品名・規格名 (kanji).
    pub name: String,
    /// 単位 (錠, カプセル, 枚, 筒, g, mL …): what a claim's quantity counts.
    pub unit: String,
    pub form: DosageForm,
    /// 一般名処方の標準的な記載, when the master gives one.
    pub generic_name: Option<String>,
    /// 変更年月日.
    pub changed_on: Option<NaiveDate>,
    /// 廃止年月日 (`99999999` in the file means none).
    pub abolished_on: Option<NaiveDate>,
}

impl Product {
    /// The drug as a claim names it: the master's product name, and its 一般名 where the
    /// master gives one. A claim carries only the レセ電 code; this is how the summary names it.
    pub fn drug_ref(&self) -> DrugRef {
        DrugRef {
            yj: self.yj.clone(),
            receipt_code: Some(self.receipt.clone()),
            name: self.name.clone(),
            generic_name: self
                .generic_name
                .as_deref()
                .map(|g| g.trim_start_matches("【般】").to_owned())
                .unwrap_or_else(|| self.name.clone()),
            strength: String::new(),
        }
    }

    /// Whether the product could be dispensed on `date` (not yet abolished).
    pub fn current_on(&self, date: NaiveDate) -> bool {
        self.abolished_on.is_none_or(|a| a > date)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MasterError {
    #[error("the shipped master archive is unreadable: {0}")]
    Archive(String),
    #[error("{file} line {line}: {problem}")]
    Row {
        file: String,
        line: u64,
        problem: String,
    },
    #[error("{0}: not a delta file name (y_YYYYMMDD.csv)")]
    DeltaName(String),
}

/// The master as of a date: products by レセ電 code.
#[derive(Debug, Clone, Default)]
pub struct Master {
    products: BTreeMap<String, Product>,
    /// The date of the newest file applied.
    pub as_of: Option<NaiveDate>,
}

const FULL_ZIP: &[u8] = include_bytes!("../data/y_ALL20240321.zip");
const FULL_DATE: &str = "20240321";

macro_rules! deltas {
    ($($date:literal),* $(,)?) => {
        &[$(($date, include_bytes!(concat!("../data/updates/y_", $date, ".csv")))),*]
    };
}

/// The published deltas, oldest first.
const DELTAS: &[(&str, &[u8])] = deltas!(
    "20240417", "20240521", "20240531", "20240613", "20240628", "20240717", "20240731", "20240814",
    "20240906", "20240925", "20241018", "20241112", "20241119", "20241205", "20250115", "20250318",
    "20250415", "20250516", "20250520", "20250612", "20250630", "20250715", "20250813",
);

/// What a row of a file does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Row {
    /// 変更区分 0, 3 or 5: the product as of this file.
    Product(Product),
    /// 変更区分 9: only the code and a date (変更年月日, or 廃止年月日) are given.
    Abolished {
        receipt: String,
        on: Option<NaiveDate>,
    },
}

fn date(s: &str) -> Option<NaiveDate> {
    match s {
        "" | "99999999" | "00000000" => None,
        _ => NaiveDate::parse_from_str(s, "%Y%m%d").ok(),
    }
}

fn decode(bytes: &[u8]) -> String {
    let (text, _, _) = encoding_rs::SHIFT_JIS.decode(bytes);
    text.into_owned()
}

fn parse_rows(file: &str, text: &str) -> Result<Vec<Row>, MasterError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let bad = |problem: String| MasterError::Row {
            file: file.to_owned(),
            line,
            problem,
        };
        let r = record.map_err(|e| bad(e.to_string()))?;
        let field = |n: usize| r.get(n - 1).unwrap_or("").trim();
        match field(1) {
            "0" | "3" | "5" => {}
            "9" => {
                let receipt = ReceiptDrugCode::parse(field(3)).map_err(|e| bad(e.to_string()))?;
                out.push(Row::Abolished {
                    receipt: receipt.as_str().to_owned(),
                    on: date(field(31)).or_else(|| date(field(30))),
                });
                continue;
            }
            other => return Err(bad(format!("変更区分 {other:?}"))),
        }
        // The accounting entries (剤形 その他, and a few 630… rows such as 薬評) have no YJ
        // code: they are not drugs.
        if field(32).is_empty() {
            continue;
        }
        let product = Product {
            receipt: ReceiptDrugCode::parse(field(3)).map_err(|e| bad(e.to_string()))?,
            yj: YjCode::parse(field(32)).map_err(|e| bad(e.to_string()))?,
            name: field(5).to_owned(),
            unit: field(10).to_owned(),
            form: DosageForm::parse(field(28))
                .ok_or_else(|| bad(format!("剤形 {:?}", field(28))))?,
            generic_name: Some(field(38).to_owned()).filter(|s| !s.is_empty()),
            changed_on: date(field(30)),
            abolished_on: date(field(31)),
        };
        out.push(Row::Product(product));
    }
    Ok(out)
}

impl Master {
    /// The shipped master, built once per process and shared: services and the generator
    /// classify and name drugs from it without parsing it again.
    pub fn shared() -> Result<&'static Master, MasterError> {
        static SHARED: OnceLock<Result<Master, MasterError>> = OnceLock::new();
        SHARED
            .get_or_init(Master::shipped)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The shipped master with every shipped delta applied (as of 2025-08-13).
    pub fn shipped() -> Result<Self, MasterError> {
        Self::shipped_as_of(NaiveDate::MAX)
    }

    /// The shipped master with the deltas published on or before `date`.
    pub fn shipped_as_of(date: NaiveDate) -> Result<Self, MasterError> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(FULL_ZIP))
            .map_err(|e| MasterError::Archive(e.to_string()))?;
        let mut bytes = Vec::new();
        archive
            .by_index(0)
            .map_err(|e| MasterError::Archive(e.to_string()))?
            .read_to_end(&mut bytes)
            .map_err(|e| MasterError::Archive(e.to_string()))?;
        let mut master = Master::default();
        master.apply(
            "y_ALL20240321.csv",
            NaiveDate::parse_from_str(FULL_DATE, "%Y%m%d").ok(),
            &decode(&bytes),
        )?;
        for (d, delta) in DELTAS {
            let name = format!("y_{d}.csv");
            let on = NaiveDate::parse_from_str(d, "%Y%m%d")
                .map_err(|_| MasterError::DeltaName(name.clone()))?;
            if on > date {
                break;
            }
            master.apply(&name, Some(on), &decode(delta))?;
        }
        Ok(master)
    }

    /// Applies one file: new and changed rows replace the row with the same レセ電 code; an
    /// abolished row stays, with its 廃止年月日, because claims made before still carry it.
    fn apply(&mut self, file: &str, on: Option<NaiveDate>, text: &str) -> Result<(), MasterError> {
        for row in parse_rows(file, text)? {
            match row {
                Row::Product(product) => {
                    self.products
                        .insert(product.receipt.as_str().to_owned(), product);
                }
                Row::Abolished { receipt, on: when } => {
                    // Abolishing a code the master never held changes nothing.
                    if let Some(p) = self.products.get_mut(&receipt) {
                        p.abolished_on = when.or(on);
                    }
                }
            }
        }
        self.as_of = on.max(self.as_of);
        Ok(())
    }

    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }

    pub fn by_receipt(&self, code: &str) -> Option<&Product> {
        self.products.get(code)
    }

    /// Every distinct YJ code, sorted.
    pub fn yj_codes(&self) -> Vec<&YjCode> {
        let mut codes: Vec<&YjCode> = self.products.values().map(|p| &p.yj).collect();
        codes.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        codes.dedup();
        codes
    }
}

//! The drug catalogue: real products with their real YJ codes, each row with its public source.
//!
//! There is no licensed master here (YJ © 医薬情報研究所, レセ電 © 支払基金), so the project ships a
//! small hand-checked list in `data/drugs.csv`. The generator draws dispensings from it and the
//! alert tests pin every alert class to rows of it.

use crate::codes::{ReceiptDrugCode, Route, YjCode};
use serde::Deserialize;

const CATALOGUE_CSV: &str = include_str!("../data/drugs.csv");

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CatalogueDrug {
    pub yj_code: YjCode,
    #[serde(deserialize_with = "optional_receipt")]
    pub receipt_code: Option<ReceiptDrugCode>,
    pub brand_name_ja: String,
    pub generic_name_ja: String,
    pub generic_name_en: String,
    pub strength: String,
    pub strength_unit: String,
    pub dosage_form: String,
    pub route: Route,
    pub typical_daily_quantity: f64,
    pub quantity_unit: String,
    pub source: String,
}

fn optional_receipt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ReceiptDrugCode>, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    ReceiptDrugCode::parse(s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("drug catalogue row {row}: {source}")]
    Row { row: usize, source: csv::Error },
    #[error("drug catalogue has duplicate YJ code {0}")]
    Duplicate(String),
    #[error("drug catalogue row {row}: route {route:?} disagrees with YJ code {yj}")]
    RouteMismatch {
        row: usize,
        yj: String,
        route: Route,
    },
}

/// The catalogue, sorted by YJ code.
#[derive(Debug, Clone)]
pub struct Catalogue {
    drugs: Vec<CatalogueDrug>,
}

impl Catalogue {
    /// The catalogue compiled into the binary.
    pub fn builtin() -> Result<Self, CatalogueError> {
        Self::from_csv(CATALOGUE_CSV)
    }

    pub fn from_csv(text: &str) -> Result<Self, CatalogueError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut drugs = Vec::new();
        for (i, row) in reader.deserialize::<CatalogueDrug>().enumerate() {
            let drug = row.map_err(|source| CatalogueError::Row { row: i + 2, source })?;
            if drug.yj_code.route() != drug.route {
                return Err(CatalogueError::RouteMismatch {
                    row: i + 2,
                    yj: drug.yj_code.to_string(),
                    route: drug.route,
                });
            }
            drugs.push(drug);
        }
        drugs.sort_by(|a, b| a.yj_code.cmp(&b.yj_code));
        if let Some(w) = drugs.windows(2).find(|w| w[0].yj_code == w[1].yj_code) {
            return Err(CatalogueError::Duplicate(w[0].yj_code.to_string()));
        }
        Ok(Self { drugs })
    }

    pub fn drugs(&self) -> &[CatalogueDrug] {
        &self.drugs
    }

    pub fn by_yj(&self, yj: &str) -> Option<&CatalogueDrug> {
        self.drugs
            .binary_search_by(|d| d.yj_code.as_str().cmp(yj))
            .ok()
            .and_then(|i| self.drugs.get(i))
    }

    /// Products whose English generic name contains `key`, case-insensitively, in YJ order
    /// (`"valpro"` finds sodium valproate, `"insulin glargine"` the glargine pens).
    pub fn by_generic(&self, key: &str) -> Vec<&CatalogueDrug> {
        let key = key.to_ascii_lowercase();
        self.drugs
            .iter()
            .filter(|d| d.generic_name_en.to_ascii_lowercase().contains(&key))
            .collect()
    }

    /// Display name for dispensing records: brand name, which already carries the strength.
    pub fn display_name(drug: &CatalogueDrug) -> String {
        drug.brand_name_ja.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_loads_and_is_large_enough() {
        let c = Catalogue::builtin().unwrap();
        assert!(c.drugs().len() >= 80, "only {} drugs", c.drugs().len());
        for d in c.drugs() {
            assert!(!d.source.is_empty(), "{} has no source", d.yj_code);
            assert!(d.typical_daily_quantity > 0.0, "{}", d.yj_code);
        }
    }

    #[test]
    fn duplicate_rows_are_rejected() {
        let header = "yj_code,receipt_code,brand_name_ja,generic_name_ja,generic_name_en,strength,strength_unit,dosage_form,route,typical_daily_quantity,quantity_unit,source\n";
        let row = "3332001F1083,,ワーファリン錠1mg,ワルファリンカリウム,warfarin,1,mg,tablet,oral,3,錠,x\n";
        let err = Catalogue::from_csv(&format!("{header}{row}{row}")).unwrap_err();
        assert!(matches!(err, CatalogueError::Duplicate(_)));
    }

    #[test]
    fn route_must_match_code() {
        let header = "yj_code,receipt_code,brand_name_ja,generic_name_ja,generic_name_en,strength,strength_unit,dosage_form,route,typical_daily_quantity,quantity_unit,source\n";
        let row = "3332001F1083,,ワーファリン錠1mg,ワルファリンカリウム,warfarin,1,mg,tablet,injection,3,錠,x\n";
        assert!(matches!(
            Catalogue::from_csv(&format!("{header}{row}")),
            Err(CatalogueError::RouteMismatch { .. })
        ));
    }
}

//! 和暦 (Japanese-era dates), as 照合番号B and the 生年月日 key use them: YYMMDD where YY is
//! the year of the era, without the era's name.

use chrono::{Datelike, NaiveDate};

/// The first day of each era since Meiji, newest first, with the Gregorian year of its year 1.
const ERAS: [(i32, u32, u32); 5] = [
    (2019, 5, 1),   // 令和
    (1989, 1, 8),   // 平成
    (1926, 12, 25), // 昭和
    (1912, 7, 30),  // 大正
    (1868, 1, 25),  // 明治 (by the lunar calendar's start of Meiji 1)
];

/// `YYMMDD` in the era `date` falls in; `None` before Meiji.
pub fn wareki_yymmdd(date: NaiveDate) -> Option<String> {
    let (start_year, ..) = ERAS
        .iter()
        .find(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d).is_some_and(|start| date >= start))?;
    let year = date.year() - start_year + 1;
    Some(format!("{year:02}{:02}{:02}", date.month(), date.day()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn converts_across_era_boundaries() {
        // The reference's confirmed vector (昭和55) and the nfcpy prompt (令和2).
        assert_eq!(wareki_yymmdd(d(1980, 2, 17)).unwrap(), "550217");
        assert_eq!(wareki_yymmdd(d(2020, 2, 24)).unwrap(), "020224");
        assert_eq!(wareki_yymmdd(d(1989, 1, 7)).unwrap(), "640107");
        assert_eq!(wareki_yymmdd(d(1989, 1, 8)).unwrap(), "010108");
        assert_eq!(wareki_yymmdd(d(2019, 4, 30)).unwrap(), "310430");
        assert_eq!(wareki_yymmdd(d(2019, 5, 1)).unwrap(), "010501");
        assert_eq!(wareki_yymmdd(d(1926, 12, 25)).unwrap(), "011225");
        assert_eq!(wareki_yymmdd(d(1912, 7, 29)).unwrap(), "450729");
        assert_eq!(wareki_yymmdd(d(1800, 1, 1)), None);
    }
}

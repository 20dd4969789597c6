//! バイタルサイン (vital signs) as a crew records them on scene and in the vehicle: JCS,
//! breathing, pulse, blood pressure, SpO2 and temperature. One record holds what was measured
//! together; every field is optional, and a record holds at least one.

use serde::{Deserialize, Serialize};

/// JCS (Japan Coma Scale) 意識レベル: 0 (alert), 1–3 (awake), 10–30 (rousable), 100–300
/// (not rousable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Jcs(u16);

impl Jcs {
    pub const ALL: [u16; 10] = [0, 1, 2, 3, 10, 20, 30, 100, 200, 300];

    pub fn new(score: u16) -> Option<Self> {
        Self::ALL.contains(&score).then_some(Jcs(score))
    }

    pub fn score(self) -> u16 {
        self.0
    }

    /// As written on a Japanese run sheet: `0`, `I-1` … `III-300`.
    pub fn label(self) -> String {
        match self.0 {
            0 => "0（清明）".to_owned(),
            s @ 1..=3 => format!("I-{s}"),
            s @ 10..=30 => format!("II-{s}"),
            s => format!("III-{s}"),
        }
    }
}

impl TryFrom<u16> for Jcs {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        Jcs::new(v).ok_or_else(|| format!("JCS {v} is not a JCS score"))
    }
}

impl From<Jcs> for u16 {
    fn from(j: Jcs) -> u16 {
        j.0
    }
}

// The schema lists the scores, from `Jcs::ALL`: the derive would say any integer.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Jcs {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .enum_values(Some(Jcs::ALL))
            .description(Some("JCS (Japan Coma Scale) score"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Jcs {}

/// 血圧 in mmHg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BloodPressure {
    // The derive says int32 for u16; a larger number is refused by the parser (400).
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub systolic: u16,
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub diastolic: u16,
}

/// One vital-signs record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jcs: Option<Jcs>,
    /// 呼吸数, breaths per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub respiratory_rate: Option<u16>,
    /// 脈拍, beats per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub pulse: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blood_pressure: Option<BloodPressure>,
    /// SpO2 in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub spo2: Option<u16>,
    /// 体温 in tenths of a degree Celsius (36.5 °C is 365), so the record stays exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub temperature_tenths: Option<u16>,
}

/// Which vital sign; also the order the screens list them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitalSign {
    Jcs,
    RespiratoryRate,
    Pulse,
    BloodPressure,
    Spo2,
    Temperature,
}

impl VitalSign {
    pub const ALL: [VitalSign; 6] = [
        VitalSign::Jcs,
        VitalSign::RespiratoryRate,
        VitalSign::Pulse,
        VitalSign::BloodPressure,
        VitalSign::Spo2,
        VitalSign::Temperature,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            VitalSign::Jcs => "意識（JCS）",
            VitalSign::RespiratoryRate => "呼吸",
            VitalSign::Pulse => "脈拍",
            VitalSign::BloodPressure => "血圧",
            VitalSign::Spo2 => "SpO2",
            VitalSign::Temperature => "体温",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VitalSign::Jcs => "jcs",
            VitalSign::RespiratoryRate => "respiratory_rate",
            VitalSign::Pulse => "pulse",
            VitalSign::BloodPressure => "blood_pressure",
            VitalSign::Spo2 => "spo2",
            VitalSign::Temperature => "temperature",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The plausible range, arrest included (0 breaths, 0 pulse); outside it a value is a
    /// slip of the finger, not a measurement. Temperature in tenths of a degree.
    pub fn range(self) -> std::ops::RangeInclusive<u16> {
        match self {
            VitalSign::Jcs => 0..=300,
            VitalSign::RespiratoryRate => 0..=80,
            VitalSign::Pulse => 0..=300,
            VitalSign::BloodPressure => 0..=300,
            VitalSign::Spo2 => 0..=100,
            VitalSign::Temperature => 200..=450,
        }
    }
}

/// A value outside its plausible range, or an empty record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VitalsError {
    #[error("a vital-signs record needs at least one value")]
    Empty,
    #[error("{0:?} is outside its plausible range")]
    OutOfRange(VitalSign),
}

impl Vitals {
    /// Checks every value against its range; a diastolic pressure is below the systolic.
    pub fn check(&self) -> Result<(), VitalsError> {
        if *self == Vitals::default() {
            return Err(VitalsError::Empty);
        }
        let within = |sign: VitalSign, v: Option<u16>| match v {
            Some(v) if !sign.range().contains(&v) => Err(VitalsError::OutOfRange(sign)),
            _ => Ok(()),
        };
        within(VitalSign::RespiratoryRate, self.respiratory_rate)?;
        within(VitalSign::Pulse, self.pulse)?;
        within(VitalSign::Spo2, self.spo2)?;
        within(VitalSign::Temperature, self.temperature_tenths)?;
        if let Some(bp) = self.blood_pressure {
            within(VitalSign::BloodPressure, Some(bp.systolic))?;
            within(VitalSign::BloodPressure, Some(bp.diastolic))?;
            if bp.diastolic > bp.systolic {
                return Err(VitalsError::OutOfRange(VitalSign::BloodPressure));
            }
        }
        Ok(())
    }

    /// The record's value for one sign, as shown (`120/80`, `36.5`, `II-10`).
    pub fn shown(&self, sign: VitalSign) -> Option<String> {
        match sign {
            VitalSign::Jcs => self.jcs.map(Jcs::label),
            VitalSign::RespiratoryRate => self.respiratory_rate.map(|v| v.to_string()),
            VitalSign::Pulse => self.pulse.map(|v| v.to_string()),
            VitalSign::BloodPressure => self
                .blood_pressure
                .map(|bp| format!("{}/{}", bp.systolic, bp.diastolic)),
            VitalSign::Spo2 => self.spo2.map(|v| v.to_string()),
            VitalSign::Temperature => self
                .temperature_tenths
                .map(|t| format!("{}.{}", t / 10, t % 10)),
        }
    }

    /// The unit shown after the value.
    pub fn unit(sign: VitalSign) -> &'static str {
        match sign {
            VitalSign::Jcs => "",
            VitalSign::RespiratoryRate => "回/分",
            VitalSign::Pulse => "回/分",
            VitalSign::BloodPressure => "mmHg",
            VitalSign::Spo2 => "%",
            VitalSign::Temperature => "℃",
        }
    }

    /// `later` over `self`, field by field (what the latest records say together).
    pub fn overlay(self, later: Vitals) -> Vitals {
        Vitals {
            jcs: later.jcs.or(self.jcs),
            respiratory_rate: later.respiratory_rate.or(self.respiratory_rate),
            pulse: later.pulse.or(self.pulse),
            blood_pressure: later.blood_pressure.or(self.blood_pressure),
            spo2: later.spo2.or(self.spo2),
            temperature_tenths: later.temperature_tenths.or(self.temperature_tenths),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn jcs_accepts_only_its_ten_scores() {
        for s in 0..=400u16 {
            assert_eq!(Jcs::new(s).is_some(), Jcs::ALL.contains(&s), "{s}");
        }
        assert_eq!(Jcs::new(20).unwrap().label(), "II-20");
        assert!(serde_json::from_str::<Vitals>(r#"{"jcs":15}"#).is_err());
        assert!(serde_json::from_str::<Vitals>(r#"{"jcs":30,"mood":1}"#).is_err());
    }

    #[test]
    fn ranges_are_checked_and_an_empty_record_refused() {
        assert_eq!(Vitals::default().check(), Err(VitalsError::Empty));
        let ok = Vitals {
            pulse: Some(0),
            respiratory_rate: Some(0),
            ..Vitals::default()
        };
        assert_eq!(ok.check(), Ok(()), "arrest values are values");
        let hot = Vitals {
            temperature_tenths: Some(451),
            ..Vitals::default()
        };
        assert_eq!(
            hot.check(),
            Err(VitalsError::OutOfRange(VitalSign::Temperature))
        );
        let upside_down = Vitals {
            blood_pressure: Some(BloodPressure {
                systolic: 80,
                diastolic: 120,
            }),
            ..Vitals::default()
        };
        assert_eq!(
            upside_down.check(),
            Err(VitalsError::OutOfRange(VitalSign::BloodPressure))
        );
    }

    #[test]
    fn later_values_overlay_earlier_ones_field_by_field() {
        let first = Vitals {
            pulse: Some(110),
            spo2: Some(92),
            ..Vitals::default()
        };
        let second = Vitals {
            pulse: Some(96),
            ..Vitals::default()
        };
        let both = first.overlay(second);
        assert_eq!(both.pulse, Some(96));
        assert_eq!(both.spo2, Some(92));
        assert_eq!(both.shown(VitalSign::Spo2).as_deref(), Some("92"));
        let t = Vitals {
            temperature_tenths: Some(365),
            ..Vitals::default()
        };
        assert_eq!(t.shown(VitalSign::Temperature).as_deref(), Some("36.5"));
    }
}

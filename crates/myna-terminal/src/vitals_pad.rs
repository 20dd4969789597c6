//! The vitals pad: every vital sign is entered with gloved hands in at most two taps and no
//! keyboard. Each sign has one row of buttons. A button either records its value (JCS, the
//! usual SpO2 values, 0 for arrest) or opens its range (`80台`), whose buttons then record
//! the exact value. Blood pressure takes the systolic and then the diastolic value, two taps
//! each.

use myna_domain::vitals::{BloodPressure, Jcs, VitalSign, Vitals};

/// A button of a sign's first row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub label: String,
    pub action: KeyAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Records this value (in the sign's unit; temperature in tenths).
    Record(u16),
    /// Opens the range starting here.
    Open(u16),
}

impl KeyAction {
    pub fn kind(self) -> &'static str {
        match self {
            KeyAction::Record(_) => "record",
            KeyAction::Open(_) => "open",
        }
    }

    pub fn value(self) -> u16 {
        match self {
            KeyAction::Record(v) | KeyAction::Open(v) => v,
        }
    }
}

/// Which row is open between its two taps; for blood pressure, the systolic value once
/// chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadState {
    pub incident: i64,
    pub sign: VitalSign,
    pub opened: Option<u16>,
    pub systolic: Option<u16>,
}

fn record(label: impl Into<String>, v: u16) -> Key {
    Key {
        label: label.into(),
        action: KeyAction::Record(v),
    }
}

fn open(label: impl Into<String>, v: u16) -> Key {
    Key {
        label: label.into(),
        action: KeyAction::Open(v),
    }
}

/// Decades from `from` to `to` (inclusive starts), as range keys: `40台` …
fn decades(from: u16, to: u16) -> impl Iterator<Item = Key> {
    (from..=to).step_by(10).map(|d| open(format!("{d}台"), d))
}

/// The first row of `sign`. For blood pressure, `systolic` tells whether the diastolic row
/// is shown.
pub fn first_row(sign: VitalSign, systolic: Option<u16>) -> Vec<Key> {
    match sign {
        VitalSign::Jcs => Jcs::ALL
            .iter()
            .filter_map(|s| Jcs::new(*s))
            .map(|j| record(j.label(), j.score()))
            .collect(),
        VitalSign::RespiratoryRate => std::iter::once(record("0", 0))
            .chain(std::iter::once(open("1〜9", 1)))
            .chain(decades(10, 50))
            .chain(std::iter::once(open("60〜", 60)))
            .collect(),
        VitalSign::Pulse => std::iter::once(record("0", 0))
            .chain(std::iter::once(open("〜29", 1)))
            .chain(decades(30, 190))
            .chain(std::iter::once(open("200〜", 200)))
            .collect(),
        VitalSign::BloodPressure if systolic.is_none() => std::iter::once(open("〜59", 1))
            .chain(decades(60, 240))
            .chain(std::iter::once(open("250〜", 250)))
            .collect(),
        VitalSign::BloodPressure => std::iter::once(open("〜29", 1))
            .chain(decades(30, 130))
            .chain(std::iter::once(open("140〜", 140)))
            .collect(),
        VitalSign::Spo2 => (90..=100)
            .rev()
            .map(|v| record(v.to_string(), v))
            .chain([open("80台", 80), open("70台", 70), open("〜69", 1)])
            .collect(),
        VitalSign::Temperature => std::iter::once(open("〜33", 200))
            .chain((34..=41).map(|d| open(format!("{d}℃台"), d * 10)))
            .chain(std::iter::once(open("42〜", 420)))
            .collect(),
    }
}

/// The buttons of an opened range: (label, value).
pub fn second_row(sign: VitalSign, opened: u16, systolic: Option<u16>) -> Vec<(String, u16)> {
    let range = sign.range();
    let values: Vec<u16> = match (sign, opened) {
        // Below the first decade key, in fives or ones where it matters.
        (VitalSign::RespiratoryRate, 1) => (1..=9).collect(),
        (VitalSign::RespiratoryRate, 60) => (60..=80).step_by(2).collect(),
        (VitalSign::Pulse, 1) => (1..=29).step_by(2).collect(),
        (VitalSign::Pulse, 200) => (200..=300).step_by(10).collect(),
        (VitalSign::BloodPressure, 1) => (1..=59).step_by(4).collect(),
        (VitalSign::BloodPressure, 250) if systolic.is_none() => (250..=300).step_by(5).collect(),
        (VitalSign::BloodPressure, 140) if systolic.is_some() => (140..=200).step_by(5).collect(),
        (VitalSign::Spo2, 1) => (50..=69).collect(),
        (VitalSign::Temperature, 200) => (200..=339).step_by(10).collect(),
        (VitalSign::Temperature, 420) => (420..=450).collect(),
        // Any other start is a decade; the value came from a form, so no overflow.
        (_, d) => (d..d.saturating_add(10)).collect(),
    };
    values
        .into_iter()
        .filter(|v| range.contains(v))
        // The diastolic value stays at or below the systolic one.
        .filter(|v| systolic.is_none_or(|s| *v <= s))
        .map(|v| {
            let label = match sign {
                VitalSign::Temperature => format!("{}.{}", v / 10, v % 10),
                _ => v.to_string(),
            };
            (label, v)
        })
        .collect()
}

/// What a record tap produces: a vitals record to send, or (blood pressure, first half) the
/// state that asks for the diastolic value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tapped {
    Send(Vitals),
    AskDiastolic(PadState),
}

/// The result of tapping a value of `sign` (with `pad` the row's state, if open).
pub fn tap_value(incident: i64, sign: VitalSign, value: u16, pad: Option<PadState>) -> Tapped {
    let mut v = Vitals::default();
    match sign {
        VitalSign::Jcs => v.jcs = Jcs::new(value),
        VitalSign::RespiratoryRate => v.respiratory_rate = Some(value),
        VitalSign::Pulse => v.pulse = Some(value),
        VitalSign::Spo2 => v.spo2 = Some(value),
        VitalSign::Temperature => v.temperature_tenths = Some(value),
        VitalSign::BloodPressure => {
            match pad
                .filter(|p| p.incident == incident && p.sign == sign)
                .and_then(|p| p.systolic)
            {
                None => {
                    return Tapped::AskDiastolic(PadState {
                        incident,
                        sign,
                        opened: None,
                        systolic: Some(value),
                    });
                }
                Some(systolic) => {
                    v.blood_pressure = Some(BloodPressure {
                        systolic,
                        diastolic: value,
                    });
                }
            }
        }
    }
    Tapped::Send(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every value the pad can reach, with the taps it takes.
    fn reachable(sign: VitalSign, systolic: Option<u16>) -> Vec<(u16, usize)> {
        let mut out = Vec::new();
        for k in first_row(sign, systolic) {
            match k.action {
                KeyAction::Record(v) => out.push((v, 1)),
                KeyAction::Open(o) => out.extend(
                    second_row(sign, o, systolic)
                        .into_iter()
                        .map(|(_, v)| (v, 2)),
                ),
            }
        }
        out
    }

    fn taps(sign: VitalSign, value: u16, systolic: Option<u16>) -> Option<usize> {
        reachable(sign, systolic)
            .into_iter()
            .filter(|(v, _)| *v == value)
            .map(|(_, n)| n)
            .min()
    }

    #[test]
    fn every_common_value_takes_at_most_two_taps() {
        let common: [(VitalSign, std::ops::RangeInclusive<u16>); 5] = [
            (VitalSign::RespiratoryRate, 0..=60),
            (VitalSign::Pulse, 30..=200),
            (VitalSign::Spo2, 50..=100),
            (VitalSign::Temperature, 340..=419),
            (VitalSign::BloodPressure, 60..=249),
        ];
        for (sign, values) in common {
            for v in values {
                assert!(
                    taps(sign, v, None).is_some_and(|n| n <= 2),
                    "{sign:?} {v} is not reachable in two taps"
                );
            }
        }
        for d in 30..=139u16 {
            assert!(
                taps(VitalSign::BloodPressure, d, Some(200)).is_some_and(|n| n <= 2),
                "diastolic {d}"
            );
        }
        for s in Jcs::ALL {
            assert_eq!(taps(VitalSign::Jcs, s, None), Some(1), "JCS {s}: one tap");
        }
        assert_eq!(taps(VitalSign::Spo2, 98, None), Some(1));
        assert_eq!(taps(VitalSign::Pulse, 0, None), Some(1), "arrest: one tap");
    }

    #[test]
    fn every_reachable_value_is_a_valid_record() {
        for sign in VitalSign::ALL {
            for (v, _) in reachable(sign, None) {
                let sent = match tap_value(1, sign, v, None) {
                    Tapped::Send(x) => x,
                    Tapped::AskDiastolic(p) => {
                        assert_eq!(p.systolic, Some(v));
                        // Every diastolic value offered after this systolic one is valid.
                        for (d, _) in reachable(sign, Some(v)) {
                            match tap_value(1, sign, d, Some(p)) {
                                Tapped::Send(bp) => assert_eq!(bp.check(), Ok(()), "{v}/{d}"),
                                Tapped::AskDiastolic(_) => panic!("asked twice"),
                            }
                        }
                        continue;
                    }
                };
                assert_eq!(sent.check(), Ok(()), "{sign:?} {v}");
            }
        }
    }

    #[test]
    fn a_forged_range_start_yields_only_valid_values() {
        for sign in VitalSign::ALL {
            for start in [0, 9, 65_530, u16::MAX] {
                for (_, v) in second_row(sign, start, None) {
                    assert!(sign.range().contains(&v), "{sign:?} {start} {v}");
                }
            }
        }
    }

    #[test]
    fn a_diastolic_tap_needs_the_systolic_of_the_same_incident() {
        let other = PadState {
            incident: 2,
            sign: VitalSign::BloodPressure,
            opened: None,
            systolic: Some(150),
        };
        assert!(matches!(
            tap_value(1, VitalSign::BloodPressure, 90, Some(other)),
            Tapped::AskDiastolic(_)
        ));
        match tap_value(2, VitalSign::BloodPressure, 90, Some(other)) {
            Tapped::Send(v) => assert_eq!(
                v.blood_pressure,
                Some(BloodPressure {
                    systolic: 150,
                    diastolic: 90
                })
            ),
            Tapped::AskDiastolic(_) => panic!("the systolic value was given"),
        }
    }
}

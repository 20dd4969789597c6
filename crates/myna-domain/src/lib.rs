//! Domain model of the Myna Kyukyu emergency-summary service.
//!
//! Everything here is pure: no I/O, no clocks, no randomness. Callers pass "today"
//! explicitly so every rule is testable and deterministic.

pub mod access;
pub mod alerts;
pub mod codes;
pub mod drugs;
pub mod hospitals;
pub mod incident;
pub mod patient;
pub mod person;
pub mod portal;
pub mod records;
pub mod review;
pub mod stats;
pub mod summary;
pub mod vitals;

pub use chrono::NaiveDate;

//! FHIR R4 `date`, `dateTime` and `instant` values.
//!
//! FHIR allows partial dates (`2024`, `2024-03`) and requires a time zone whenever a time is
//! given. The `time` crate parses RFC 3339 instants but not partial dates, so partial forms are
//! handled here and full instants are handed to `time`.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

/// A parsed FHIR date or dateTime. Partial dates keep their precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirDateTime {
    Year(i32),
    YearMonth(i32, Month),
    Date(Date),
    /// Date with time and zone (dateTime / instant).
    Instant(OffsetDateTime),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Names the kind of value expected (`date`, `dateTime`, `instant`), never the value itself: the
/// message can reach a card or the audit trail, and a date may be patient data (a birth date).
#[error("not a valid FHIR {0}")]
pub struct DateError(pub &'static str);

fn year(s: &str) -> Option<i32> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        let y: i32 = s.parse().ok()?;
        (1..=9999).contains(&y).then_some(y)
    } else {
        None
    }
}

fn two_digits(s: &str) -> Option<u8> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_date_only(s: &str) -> Option<FhirDateTime> {
    let mut parts = s.split('-');
    let y = year(parts.next()?)?;
    let Some(m) = parts.next() else {
        return Some(FhirDateTime::Year(y));
    };
    let month = Month::try_from(two_digits(m)?).ok()?;
    let Some(d) = parts.next() else {
        return Some(FhirDateTime::YearMonth(y, month));
    };
    if parts.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(y, month, two_digits(d)?).ok()?;
    Some(FhirDateTime::Date(date))
}

impl FhirDateTime {
    /// Parses a FHIR `date` (no time part).
    pub fn parse_date(s: &str) -> Result<Self, DateError> {
        parse_date_only(s).ok_or(DateError("date"))
    }

    /// Parses a FHIR `dateTime`: a (partial) date, or a full date-time with seconds and zone.
    pub fn parse_date_time(s: &str) -> Result<Self, DateError> {
        if s.contains('T') {
            Self::parse_instant(s).map_err(|_| DateError("dateTime"))
        } else {
            parse_date_only(s).ok_or(DateError("dateTime"))
        }
    }

    /// Parses a FHIR `instant` (full date-time with zone).
    pub fn parse_instant(s: &str) -> Result<Self, DateError> {
        // RFC 3339 allows a space instead of `T` and lowercase letters; FHIR does not.
        let well_formed = s.len() >= 20
            && s.as_bytes()[10] == b'T'
            && !s.bytes().any(|b| b == b' ' || b.is_ascii_lowercase());
        if !well_formed {
            return Err(DateError("instant"));
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .map(FhirDateTime::Instant)
            .map_err(|_| DateError("instant"))
    }

    /// First calendar day covered by the value (UTC date for instants).
    pub fn earliest_date(self) -> Date {
        match self {
            FhirDateTime::Year(y) => {
                Date::from_calendar_date(y, Month::January, 1).unwrap_or(Date::MIN)
            }
            FhirDateTime::YearMonth(y, m) => Date::from_calendar_date(y, m, 1).unwrap_or(Date::MIN),
            FhirDateTime::Date(d) => d,
            FhirDateTime::Instant(t) => t.to_offset(time::UtcOffset::UTC).date(),
        }
    }

    /// Last calendar day covered by the value (UTC date for instants).
    pub fn latest_date(self) -> Date {
        match self {
            FhirDateTime::Year(y) => {
                Date::from_calendar_date(y, Month::December, 31).unwrap_or(Date::MAX)
            }
            FhirDateTime::YearMonth(y, m) => {
                let days = m.length(y);
                Date::from_calendar_date(y, m, days).unwrap_or(Date::MAX)
            }
            FhirDateTime::Date(d) => d,
            FhirDateTime::Instant(t) => t.to_offset(time::UtcOffset::UTC).date(),
        }
    }
}

/// Whole years between `birth` and `on` (age on that day).
pub fn age_in_years(birth: Date, on: Date) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn partial_dates() {
        assert_eq!(
            FhirDateTime::parse_date("1970").unwrap(),
            FhirDateTime::Year(1970)
        );
        assert_eq!(
            FhirDateTime::parse_date("1970-07").unwrap(),
            FhirDateTime::YearMonth(1970, Month::July)
        );
        assert_eq!(
            FhirDateTime::parse_date("1970-07-14").unwrap(),
            FhirDateTime::Date(date!(1970 - 07 - 14))
        );
        assert_eq!(
            FhirDateTime::parse_date("2024-02").unwrap().latest_date(),
            date!(2024 - 02 - 29)
        );
    }

    #[test]
    fn rejects_bad_dates() {
        for bad in [
            "",
            "70",
            "1970-13",
            "1970-02-30",
            "1970-7-4",
            "2024-13-01",
            "not-a-date",
            "1970-01-01-01",
            "0000",
            "2024-05-01T10:14",
            "2024-05-01T10:14:00",
            "2024-05-01 10:14:00Z",
            "2024-05-01t10:14:00z",
        ] {
            assert!(
                FhirDateTime::parse_date_time(bad).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(FhirDateTime::parse_date("2024-05-01T10:14:00Z").is_err());
    }

    #[test]
    fn instants() {
        let v = FhirDateTime::parse_date_time("2024-05-01T23:30:00-04:00").unwrap();
        assert_eq!(v.earliest_date(), date!(2024 - 05 - 02));
        assert!(FhirDateTime::parse_instant("2018-04-30T13:25:40.845-04:00").is_ok());
    }

    #[test]
    fn ages() {
        assert_eq!(
            age_in_years(date!(2010 - 06 - 15), date!(2026 - 06 - 14)),
            15
        );
        assert_eq!(
            age_in_years(date!(2010 - 06 - 15), date!(2026 - 06 - 15)),
            16
        );
    }
}

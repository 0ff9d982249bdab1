//! Spans of time written as a number and a unit (`90s`, `15m`, `12h`, `30d`), for settings
//! measured in hours or days (`MAX_DELAY`, `TASK_RETENTION`).

use std::time::Duration;

/// The longest span accepted: ten years, far from any clock's overflow.
const MAX_SPAN: Duration = Duration::from_secs(3650 * 24 * 3600);

/// Parses a whole number followed by `s`, `m`, `h` or `d`; zero, a fraction, a missing or
/// unknown unit, or more than ten years is refused with the reason.
pub fn parse_span(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| "needs a unit: s, m, h or d (e.g. 30d)".to_owned())?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "must be a whole number followed by s, m, h or d (e.g. 30d)".to_owned())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: use s, m, h or d (e.g. 30d)"
            ));
        }
    };
    let span = number
        .checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .filter(|span| *span <= MAX_SPAN)
        .ok_or_else(|| "must be at most 3650d".to_owned())?;
    if span.is_zero() {
        return Err("must be greater than 0".to_owned());
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_with_a_unit_is_a_span() {
        assert_eq!(parse_span("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_span("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_span("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_span(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_span("3650d"), Ok(MAX_SPAN));
    }

    #[test]
    fn zero_a_fraction_no_unit_an_unknown_unit_or_too_long_is_refused() {
        for bad in [
            "",
            "30",
            "0d",
            "1.5d",
            "-1d",
            "d",
            "30 d",
            "30days",
            "2w",
            "3651d",
            "99999999999999999999d",
        ] {
            assert!(parse_span(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

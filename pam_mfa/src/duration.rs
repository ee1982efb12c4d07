//! Durations as admins write them (`30s`, `15m`, `12h`, `7d`, `2w`), shared by
//! the config file and `mfa-ctl --grace/--expires`, so both read them alike.

use std::fmt;

/// Parses `N`, `Ns`, `Nm`, `Nh`, `Nd` or `Nw` into seconds.
pub fn parse(text: &str) -> Result<u64, DurationError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(DurationError(text.to_string()));
    }
    let n: u64 = digits.parse().map_err(|_| DurationError(text.to_string()))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(DurationError(text.to_string())),
    };
    n.checked_mul(mult).ok_or_else(|| DurationError(text.to_string()))
}

/// Formats seconds in the largest whole unit, the inverse of [`parse`].
pub fn format(secs: u64) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a duration: write a whole number with s, m, h, d or w (e.g. 30s, 15m, 7d)",
            self.0
        )
    }
}

impl std::error::Error for DurationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("30").unwrap(), 30);
        assert_eq!(parse("30s").unwrap(), 30);
        assert_eq!(parse("15m").unwrap(), 900);
        assert_eq!(parse("12h").unwrap(), 43_200);
        assert_eq!(parse("7d").unwrap(), 604_800);
        assert_eq!(parse("2w").unwrap(), 1_209_600);
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "d", "7x", "-1d", "1.5h", "99999999999999999999w", "7 d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in [0, 1, 59, 60, 90, 3600, 86_400, 604_800, 1_209_600, 93_784] {
            assert_eq!(parse(&format(s)).unwrap(), s);
        }
    }
}

//! Durations as the agent's flags and kubectl bpc's take them (`30s`,
//! `500ms`, `2m`), and the range of `--batch`, which both check.

use std::time::Duration;

/// Parses a duration: a number with unit `ms`, `s`, `m` or `h`; a bare
/// number is seconds; fractions are allowed (`1.5`, `0.5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// The longest `--batch`: a batch's frames wait in the agent's capture ring.
pub const MAX_BATCH: Duration = Duration::from_secs(1);
/// The shortest `--batch` other than off: 1 ms is the ring's own block timeout.
pub const MIN_BATCH: Duration = Duration::from_millis(2);

/// Parses `--batch` (`BPC_BATCH`): `0` (off) or a duration from
/// [`MIN_BATCH`] to [`MAX_BATCH`].
pub fn parse_batch(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || (MIN_BATCH..=MAX_BATCH).contains(&d) {
        Ok(d)
    } else {
        Err(format!(
            "{s:?} is outside 2ms..1s: frames gather in the agent's capture ring, which a longer batch \
             would overrun; give 0 for no batching"
        ))
    }
}

/// A `--batch` as the sidecar's `BPC_BATCH` carries it: whole milliseconds.
pub fn batch_text(batch: Duration) -> String {
    format!("{}ms", batch.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_fractions() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("1d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn batch_is_off_or_between_two_milliseconds_and_one_second() {
        assert_eq!(parse_batch("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_batch("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_batch("1s").unwrap(), MAX_BATCH);
        let e = parse_batch("1ms").unwrap_err();
        assert!(e.contains("outside 2ms..1s") && e.contains("give 0"), "{e}");
        assert!(parse_batch("3s").is_err());
        assert_eq!(batch_text(parse_batch("0.25s").unwrap()), "250ms");
        assert_eq!(parse_batch(&batch_text(Duration::from_millis(250))).unwrap(), Duration::from_millis(250));
    }
}

//! Wave window timestamps: RFC 3339 with an explicit offset, kept as Unix seconds.

use toml::value::{Datetime, Offset};

/// A point in time as written in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub text: String,
    pub unix: i64,
}

/// Converts a TOML datetime to a timestamp; `None` with a reason when it lacks a date,
/// a time or an offset.
pub fn from_datetime(dt: &Datetime) -> Result<Timestamp, &'static str> {
    let date = dt.date.ok_or("a cutover or window time needs a date")?;
    let time = dt
        .time
        .ok_or("a cutover or window time needs a time of day, e.g. 2026-12-05T22:00:00Z")?;
    let offset = dt.offset.ok_or(
        "a cutover or window time needs an offset (`Z` or `+01:00`): local times are ambiguous across sites",
    )?;
    let days = days_from_civil(date.year as i64, date.month as i64, date.day as i64);
    let secs = time.second.unwrap_or(0) as i64;
    let mut unix = days * 86_400 + time.hour as i64 * 3600 + time.minute as i64 * 60 + secs;
    if let Offset::Custom { minutes } = offset {
        unix -= minutes as i64 * 60;
    }
    Ok(Timestamp {
        text: dt.to_string(),
        unix,
    })
}

pub fn parse(text: &str) -> Result<Timestamp, &'static str> {
    let dt: Datetime = text
        .parse()
        .map_err(|_| "not an RFC 3339 date-time, e.g. 2026-12-05T22:00:00Z")?;
    from_datetime(&dt)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A duration as people write it: `15m`, `90s`, `2h`, `1m30s`, `1h30m`.
pub fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_offsets() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap().unix, 0);
        assert_eq!(parse("2026-12-05T22:00:00Z").unwrap().unix, 1_796_508_000);
        assert_eq!(
            parse("2026-12-05T23:00:00+01:00").unwrap().unix,
            1_796_508_000
        );
        assert!(parse("2026-12-05T22:00:00").is_err());
        assert!(parse("2026-12-05").is_err());
        assert!(parse("tomorrow").is_err());
    }
}

//! The time git-ports records, kept to what the registry can hold: a clock set before 1970 or
//! past the year 9999 is clamped to the nearest time the registry can write and read back,
//! never a panic and never a file git-ports would then call corrupt.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// The latest time an RFC 3339 timestamp with a four-digit year can say.
const LATEST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Now, clamped (see the module).
pub fn now() -> DateTime<Utc> {
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var("GIT_PORTS_NOW")
        .ok()
        .and_then(|s| s.parse::<i128>().ok())
    {
        return from_secs(secs);
    }
    from_system(SystemTime::now())
}

/// A system time as a registry time.
pub fn from_system(t: SystemTime) -> DateTime<Utc> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    };
    from_secs(secs)
}

fn from_secs(secs: i128) -> DateTime<Utc> {
    let clamped = secs.clamp(0, i128::from(LATEST));
    DateTime::from_timestamp(i64::try_from(clamped).unwrap_or(0), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clocks_out_of_range_are_clamped_not_fatal() {
        let before_1970 = UNIX_EPOCH - Duration::from_secs(86_400 * 365);
        assert_eq!(from_system(before_1970).timestamp(), 0);
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        let t = from_system(far);
        assert_eq!(t.timestamp(), LATEST);
        let text = crate::output::timestamp(&t);
        assert_eq!(text, "9999-12-31T23:59:59Z");
        assert!(DateTime::parse_from_rfc3339(&text).is_ok());
    }
}

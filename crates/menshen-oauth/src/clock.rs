//! Calendar days in Asia/Shanghai (UTC+8, no daylight saving time) for the
//! daily use limit (USR-3).

/// Seconds east of UTC.
pub const SHANGHAI_OFFSET: i64 = 8 * 3600;

/// The Shanghai calendar day of `unix` (days since 1970-01-01 there).
pub fn shanghai_day(unix: i64) -> i64 {
    unix.saturating_add(SHANGHAI_OFFSET).div_euclid(86_400)
}

/// The unix time at which the Shanghai day after `unix`'s begins.
pub fn next_shanghai_midnight(unix: i64) -> i64 {
    (shanghai_day(unix) + 1)
        .saturating_mul(86_400)
        .saturating_sub(SHANGHAI_OFFSET)
}

/// `YYYY-MM-DD HH:MM` in Shanghai time, for pages.
pub fn shanghai_text(unix: i64) -> String {
    // Clamped to years 0-9999: a time from outside (a lock's end) cannot
    // overflow the arithmetic.
    let local = unix.clamp(-62_167_219_200, 253_402_300_799) + SHANGHAI_OFFSET;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_3_day_turns_at_shanghai_midnight() {
        // 2026-11-30T15:59:59Z is 23:59:59 in Shanghai; a second later is
        // the next day there.
        let t = 1_796_054_399;
        assert_eq!(shanghai_day(t) + 1, shanghai_day(t + 1));
        assert_eq!(next_shanghai_midnight(t), t + 1);
        assert_eq!(next_shanghai_midnight(t + 1), t + 1 + 86_400);
        assert_eq!(shanghai_text(t), "2026-11-30 23:59");
        assert_eq!(shanghai_text(0), "1970-01-01 08:00");
        assert_eq!(shanghai_text(951_782_400), "2000-02-29 08:00");
        let _ = (shanghai_text(i64::MAX), shanghai_text(i64::MIN));
        let _ = (next_shanghai_midnight(i64::MAX), shanghai_day(i64::MIN));
    }
}

//! The local wall-clock time (weekday, hour, minute) through `localtime_r(3)`, which reads the
//! time zone from `TZ` or `/etc/localtime` as every other program on the machine does.

/// A local wall-clock moment, as far as a maintenance window needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Day of the week, 0 = Monday .. 6 = Sunday.
    pub weekday: u8,
    /// Minutes since local midnight, 0..1440.
    pub minute: u16,
}

/// The local time now; `None` when the C library cannot convert it (it never fails for the
/// current time on a sane system).
pub fn now() -> Option<LocalTime> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `libc::tm` is plain old data for which all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live, properly aligned locals for the whole call;
    // localtime_r is the thread-safe variant (no shared static buffer).
    let done = unsafe { libc::localtime_r(&t, &mut tm) };
    if done.is_null() {
        return None;
    }
    // tm_wday: 0 = Sunday; shift to 0 = Monday.
    let weekday = u8::try_from((tm.tm_wday + 6).rem_euclid(7)).ok()?;
    // tm_sec may be 60 (leap second); hours and minutes are always in range.
    let minute = u16::try_from(tm.tm_hour * 60 + tm.tm_min).ok()?.min(1439);
    Some(LocalTime { weekday, minute })
}

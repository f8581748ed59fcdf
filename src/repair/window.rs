//! Maintenance windows for unattended repair (`[repair] window` in the configuration,
//! `snapguard repair --maintenance`): parsing and matching, pure (the clock is the caller's).
//!
//! One window is `[DAYS] HH:MM-HH:MM` in local wall-clock time, as systemd writes weekdays:
//! `Sun 02:00-04:00`, `Mon..Fri 22:30-23:30`, `Sat,Sun 01:00-05:00`, `00:00-24:00` (every day).
//! Days are `Mon Tue Wed Thu Fri Sat Sun` (or spelled out, any case), joined with `,` and
//! ranged with `..` (or `-`, as `Mon-Fri`); a range may wrap (`Fri..Mon`). The start is
//! included and the end is not; `24:00` is the end of the day. An end at or before the start
//! spans midnight and belongs to the day it starts on: `Sun 23:00-01:00` is open from Sunday
//! 23:00 until Monday 01:00. Start equal to end is refused (an empty window or a whole day is
//! said differently: `00:00-24:00`).
//!
//! Matching uses the wall-clock time only (weekday, hour, minute), so a DST change moves the
//! window with the clock, as cron and systemd's `OnCalendar=` do.

use crate::sys::localtime::LocalTime;
use serde::Deserialize;
use std::fmt;

/// Minutes in a day.
const DAY: u16 = 24 * 60;

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// One window: on which days it starts, and from when to when (minutes since midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `d` set: the window starts on weekday `d` (0 = Monday).
    days: u8,
    start: u16,
    /// Exclusive; at or before `start` means the next day.
    end: u16,
}

/// Every day of the week.
const ALL_DAYS: u8 = 0x7f;

impl Window {
    /// Parse one window (see the module doc).
    pub fn parse(text: &str) -> Result<Window, String> {
        let text = text.trim();
        let (days, times) = match text.rsplit_once(char::is_whitespace) {
            Some((days, times)) => (parse_days(days.trim())?, times),
            None => (ALL_DAYS, text),
        };
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("'{times}' is not HH:MM-HH:MM"))?;
        let start = parse_clock(start)?;
        let end = parse_clock(end)?;
        if start == DAY {
            return Err("a window cannot start at 24:00 (say 00:00 of the next day)".into());
        }
        if start == end {
            return Err(format!(
                "'{times}' starts where it ends (a whole day is 00:00-24:00)"
            ));
        }
        Ok(Window { days, start, end })
    }

    /// Whether `now` is inside the window.
    pub fn contains(&self, now: LocalTime) -> bool {
        let day = |d: u8| self.days & (1 << (d % 7)) != 0;
        let yesterday = (now.weekday + 6) % 7;
        if self.start < self.end {
            day(now.weekday) && (self.start..self.end).contains(&now.minute)
        } else {
            // Spans midnight: the evening part today, the morning part of yesterday's window.
            (day(now.weekday) && now.minute >= self.start)
                || (day(yesterday) && now.minute < self.end)
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != ALL_DAYS {
            let names: Vec<String> = (0..7)
                .filter(|d| self.days & (1 << d) != 0)
                .map(|d| {
                    let short = DAY_NAMES[d].0;
                    short[..1].to_uppercase() + &short[1..]
                })
                .collect();
            write!(f, "{} ", names.join(","))?;
        }
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

fn parse_day(word: &str) -> Result<u8, String> {
    let lower = word.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|(short, long)| lower == *short || lower == *long)
        .map(|d| d as u8)
        .ok_or_else(|| format!("'{word}' is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn parse_days(text: &str) -> Result<u8, String> {
    let mut days = 0u8;
    for part in text.split(',') {
        let part = part.trim();
        let range = part.split_once("..").or_else(|| part.split_once('-'));
        match range {
            Some((from, to)) => {
                let (from, to) = (parse_day(from.trim())?, parse_day(to.trim())?);
                let mut d = from;
                loop {
                    days |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days |= 1 << parse_day(part)?,
        }
    }
    Ok(days)
}

/// `HH:MM` as minutes since midnight; `24:00` is allowed (the end of the day).
fn parse_clock(text: &str) -> Result<u16, String> {
    let bad = || format!("'{text}' is not a time of day HH:MM (00:00 to 24:00)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(DAY),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// `[repair] window`: one window or a list; open when any of them is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    /// Whether `now` is inside one of the windows.
    pub fn contains(&self, now: LocalTime) -> bool {
        self.0.iter().any(|w| w.contains(now))
    }
}

impl fmt::Display for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(Window::to_string).collect();
        f.write_str(&all.join(", "))
    }
}

impl<'de> Deserialize<'de> for Windows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let texts = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "window must be a string like \"Sun 02:00-04:00\" or a list of them",
            )
        })? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        if texts.is_empty() {
            return Err(serde::de::Error::custom(
                "window = []: an empty list would never open (leave the key out instead)",
            ));
        }
        texts
            .iter()
            .map(|t| Window::parse(t).map_err(|e| format!("window \"{t}\": {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Windows)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u8, h: u16, m: u16) -> LocalTime {
        LocalTime {
            weekday,
            minute: h * 60 + m,
        }
    }
    const MON: u8 = 0;
    const TUE: u8 = 1;
    const SAT: u8 = 5;
    const SUN: u8 = 6;

    #[test]
    fn a_plain_window_includes_its_start_and_not_its_end() {
        let w = Window::parse("Sun 02:00-04:00").unwrap();
        assert!(!w.contains(at(SUN, 1, 59)));
        assert!(w.contains(at(SUN, 2, 0)));
        assert!(w.contains(at(SUN, 3, 59)));
        assert!(!w.contains(at(SUN, 4, 0)));
        assert!(!w.contains(at(SAT, 2, 30)), "another day");
        assert!(!w.contains(at(MON, 2, 30)), "another day");
        assert_eq!(w.to_string(), "Sun 02:00-04:00");
    }

    #[test]
    fn a_window_over_midnight_belongs_to_its_start_day() {
        let w = Window::parse("sunday 23:00-01:30").unwrap();
        assert!(!w.contains(at(SUN, 22, 59)));
        assert!(w.contains(at(SUN, 23, 0)));
        assert!(
            w.contains(at(MON, 0, 0)),
            "Monday morning is Sunday's window"
        );
        assert!(w.contains(at(MON, 1, 29)));
        assert!(!w.contains(at(MON, 1, 30)));
        assert!(!w.contains(at(SUN, 0, 30)), "Sunday morning is Saturday's");
        assert!(
            !w.contains(at(MON, 23, 30)),
            "Monday evening is not a window day"
        );
        // Wrapping from Sunday to Monday across the week boundary.
        let w = Window::parse("Sat..Sun 22:00-02:00").unwrap();
        assert!(w.contains(at(MON, 1, 0)));
        assert!(w.contains(at(SUN, 1, 0)));
        assert!(!w.contains(at(SAT, 1, 0)), "Friday is not a window day");
        assert!(!w.contains(at(TUE, 1, 0)));
        // The end may equal 00:00: until midnight.
        let w = Window::parse("Mon 22:00-00:00").unwrap();
        assert!(w.contains(at(MON, 23, 59)));
        assert!(!w.contains(at(TUE, 0, 0)));
    }

    #[test]
    fn days_lists_ranges_and_every_day() {
        let w = Window::parse("Mon..Fri 22:30-23:30").unwrap();
        assert_eq!(w.to_string(), "Mon,Tue,Wed,Thu,Fri 22:30-23:30");
        assert_eq!(Window::parse("mon-fri 22:30-23:30").unwrap(), w);
        assert_eq!(
            Window::parse("Fri..Mon 01:00-02:00").unwrap().to_string(),
            "Mon,Fri,Sat,Sun 01:00-02:00"
        );
        assert_eq!(
            Window::parse("Sat, Sun 01:00-05:00").unwrap().to_string(),
            "Sat,Sun 01:00-05:00"
        );
        let every = Window::parse("00:00-24:00").unwrap();
        for d in 0..7 {
            assert!(every.contains(at(d, 0, 0)));
            assert!(every.contains(at(d, 23, 59)));
        }
        assert_eq!(every.to_string(), "00:00-24:00");
    }

    #[test]
    fn bad_windows_say_why() {
        for (text, why) in [
            ("Sun 02:00", "not HH:MM-HH:MM"),
            ("Sun 2-4", "not a time of day"),
            ("Sun 02:00-04:60", "not a time of day"),
            ("Sun 25:00-04:00", "not a time of day"),
            ("Sun 24:00-01:00", "cannot start at 24:00"),
            ("Sun 02:00-02:00", "starts where it ends"),
            ("Sonntag 02:00-04:00", "not a weekday"),
            ("Sun..Funday 02:00-04:00", "not a weekday"),
            ("", "not HH:MM-HH:MM"),
            ("Sun 02:00-+4:00", "not a time of day"),
        ] {
            let err = Window::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_list_is_open_when_one_window_is() {
        #[derive(Deserialize)]
        struct T {
            window: Windows,
        }
        let t: T = toml::from_str("window = [\"Sun 02:00-04:00\", \"Wed 22:00-02:00\"]\n").unwrap();
        assert!(t.window.contains(at(SUN, 3, 0)));
        assert!(
            t.window.contains(at(3, 1, 0)),
            "Thursday 01:00 is Wednesday's"
        );
        assert!(!t.window.contains(at(SUN, 5, 0)));
        assert_eq!(t.window.to_string(), "Sun 02:00-04:00, Wed 22:00-02:00");
        let t: T = toml::from_str("window = \"Sun 02:00-04:00\"\n").unwrap();
        assert_eq!(t.window.0.len(), 1);
        for bad in ["window = []", "window = 3", "window = \"Sun 2\""] {
            assert!(toml::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}

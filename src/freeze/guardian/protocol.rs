//! The lines the controller and the guardian exchange: one ASCII line per message, each far
//! shorter than PIPE_BUF so a write is atomic. Pure: encoding into a fixed buffer and decoding
//! from bytes, without allocation on the guardian's side (it runs them while filesystems are
//! frozen).

use std::fmt::Write as _;

/// A request from the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `W`: open a freeze window; its deadline starts at the first FIFREEZE in it.
    OpenWindow,
    /// `Z i`: freeze mount `i`.
    Freeze(usize),
    /// `U`: thaw everything this window froze, last first, and close the window.
    ThawAll,
    /// `C pid start`: CMD runs as `pid` (start time `start`): terminate it if the controller
    /// dies before the window ends.
    Command { pid: u32, start_time: u64 },
    /// `H k`: freeze hook `k` is about to run: if the controller dies, run its thaw hook.
    HookFroze(usize),
    /// `I k pid start`: freeze hook `k` runs as `pid` (its own process group), started at
    /// `start`: if the controller dies, wait for it (kill its group at the hook timeout) before
    /// running its thaw hook.
    HookRunning {
        index: usize,
        pid: u32,
        start_time: u64,
    },
    /// `h k`: the controller runs (or ran) thaw hook `k` itself.
    HookThawed(usize),
    /// `P`: are you there? (answered with `P`)
    Ping,
    /// `D`: done: thaw what is left, write the last record and exit.
    Done,
}

/// Why a window ended (every mount it froze is thawed when this is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowEnd {
    /// The controller asked (`U`, `D`).
    Requested,
    /// The deadline passed.
    Deadline,
    /// The controller's end of the channel closed: it died.
    ControllerGone,
    /// The guardian got this signal.
    Signal(i32),
    /// The guardian could not wait any more (poll failed): it thawed to be safe.
    Error,
}

/// A report from the guardian. Times are CLOCK_BOOTTIME nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `R mlocked oom rcu record`: ready; whether mlockall, the OOM protection, expedited RCU
    /// grace periods around FIFREEZE, and the run's record (first write done) are in effect.
    Ready {
        mlocked: bool,
        oom_protected: bool,
        expedite_rcu: bool,
        recorded: bool,
    },
    /// `E step i errno`: setup failed (the guardian exits).
    SetupFailed {
        step: SetupStep,
        index: usize,
        errno: i32,
    },
    /// `A ns`: the window's deadline.
    Armed { deadline_ns: u64 },
    /// `F i start end`: FIFREEZE of `i` returned 0.
    Frozen { index: usize, start: u64, end: u64 },
    /// `B i start end`: FIFREEZE of `i` said EBUSY: someone else holds a freeze.
    Busy { index: usize, start: u64, end: u64 },
    /// `N i errno start end`: FIFREEZE of `i` failed otherwise.
    FreezeFailed {
        index: usize,
        errno: i32,
        start: u64,
        end: u64,
    },
    /// `Q i`: not frozen: no open window (it ended, or the guardian is stopping).
    Refused { index: usize },
    /// `X i errno start end`: FITHAW of `i` (errno 0: success).
    Thawed {
        index: usize,
        errno: i32,
        start: u64,
        end: u64,
    },
    /// `k why`: the window is ending (sent before its thaws, while a FIFREEZE may still be in
    /// flight): nothing frozen from now on may be used as a snapshot.
    WindowEnding(WindowEnd),
    /// `K why`: a window ended; nothing it froze is frozen any more (or its thaw failed and was
    /// reported).
    WindowEnded(WindowEnd),
    /// `P`: answer to a ping.
    Pong,
    /// `c 0|1`: CMD registered (1) or could not be (0: gone already, or not the same process).
    CommandWatched(bool),
}

/// What failed while the guardian set itself up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStep {
    /// Reading or parsing the spec line.
    Spec,
    /// Blocking signals or the signalfd.
    Signals,
    /// Opening mount `i`.
    Open,
    /// Mount `i` is not the mount the controller proved (another mount, another device).
    Changed,
    /// An inherited hook fd is not open.
    Hook,
    /// The deadline timer or the worker thread.
    Timer,
}

impl SetupStep {
    fn word(self) -> &'static str {
        match self {
            SetupStep::Spec => "spec",
            SetupStep::Signals => "signals",
            SetupStep::Open => "open",
            SetupStep::Changed => "changed",
            SetupStep::Hook => "hook",
            SetupStep::Timer => "timer",
        }
    }

    fn from_word(w: &[u8]) -> Option<Self> {
        Some(match w {
            b"spec" => SetupStep::Spec,
            b"signals" => SetupStep::Signals,
            b"open" => SetupStep::Open,
            b"changed" => SetupStep::Changed,
            b"hook" => SetupStep::Hook,
            b"timer" => SetupStep::Timer,
            _ => return None,
        })
    }
}

/// A fixed-size line (no allocation).
pub struct Line {
    buf: [u8; 96],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 96],
            len: 0,
        }
    }
}

impl Line {
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let bytes = s.as_bytes();
        let end = self.len + bytes.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

fn encode(args: std::fmt::Arguments<'_>) -> Line {
    let mut line = Line::default();
    // Every message is far below 96 bytes (numbers are at most 20 digits each).
    let _ = line.write_fmt(args);
    line
}

impl Request {
    /// The line for this request.
    pub fn encode(self) -> Line {
        match self {
            Request::OpenWindow => encode(format_args!("W\n")),
            Request::Freeze(i) => encode(format_args!("Z {i}\n")),
            Request::ThawAll => encode(format_args!("U\n")),
            Request::Command { pid, start_time } => encode(format_args!("C {pid} {start_time}\n")),
            Request::HookFroze(k) => encode(format_args!("H {k}\n")),
            Request::HookRunning {
                index,
                pid,
                start_time,
            } => encode(format_args!("I {index} {pid} {start_time}\n")),
            Request::HookThawed(k) => encode(format_args!("h {k}\n")),
            Request::Ping => encode(format_args!("P\n")),
            Request::Done => encode(format_args!("D\n")),
        }
    }

    /// Decode one line (without its newline); `None` for anything malformed.
    pub fn decode(line: &[u8]) -> Option<Self> {
        let mut f = Fields::new(line);
        let r = match f.word()? {
            b"W" => Request::OpenWindow,
            b"Z" => Request::Freeze(f.index()?),
            b"U" => Request::ThawAll,
            b"C" => Request::Command {
                pid: u32::try_from(f.number()?).ok()?,
                start_time: f.number()?,
            },
            b"H" => Request::HookFroze(f.index()?),
            b"I" => Request::HookRunning {
                index: f.index()?,
                pid: u32::try_from(f.number()?).ok()?,
                start_time: f.number()?,
            },
            b"h" => Request::HookThawed(f.index()?),
            b"P" => Request::Ping,
            b"D" => Request::Done,
            _ => return None,
        };
        f.end().then_some(r)
    }
}

impl WindowEnd {
    fn encode_into(self, line: &mut Line) {
        let _ = match self {
            WindowEnd::Requested => line.write_str("request"),
            WindowEnd::Deadline => line.write_str("deadline"),
            WindowEnd::ControllerGone => line.write_str("eof"),
            WindowEnd::Signal(n) => write!(line, "signal-{n}"),
            WindowEnd::Error => line.write_str("error"),
        };
    }

    fn decode(w: &[u8]) -> Option<Self> {
        Some(match w {
            b"request" => WindowEnd::Requested,
            b"deadline" => WindowEnd::Deadline,
            b"eof" => WindowEnd::ControllerGone,
            b"error" => WindowEnd::Error,
            _ => {
                let n = w.strip_prefix(b"signal-")?;
                WindowEnd::Signal(i32::try_from(parse_u64(n)?).ok()?)
            }
        })
    }

    /// How a report says it.
    pub fn describe(self) -> String {
        match self {
            WindowEnd::Requested => "at snapguard's request".to_string(),
            WindowEnd::Deadline => "at the deadline".to_string(),
            WindowEnd::ControllerGone => "because snapguard died".to_string(),
            WindowEnd::Signal(n) => format!("because the guardian got {}", signal_name(n)),
            WindowEnd::Error => "because the guardian could not wait any more".to_string(),
        }
    }
}

/// `SIGTERM` for 15, `signal 42` for what has no name.
pub fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {n}"))
}

impl Event {
    /// The line for this event.
    pub fn encode(self) -> Line {
        match self {
            Event::Ready {
                mlocked,
                oom_protected,
                expedite_rcu,
                recorded,
            } => encode(format_args!(
                "R {} {} {} {}\n",
                u8::from(mlocked),
                u8::from(oom_protected),
                u8::from(expedite_rcu),
                u8::from(recorded)
            )),
            Event::SetupFailed { step, index, errno } => {
                encode(format_args!("E {} {index} {errno}\n", step.word()))
            }
            Event::Armed { deadline_ns } => encode(format_args!("A {deadline_ns}\n")),
            Event::Frozen { index, start, end } => {
                encode(format_args!("F {index} {start} {end}\n"))
            }
            Event::Busy { index, start, end } => encode(format_args!("B {index} {start} {end}\n")),
            Event::FreezeFailed {
                index,
                errno,
                start,
                end,
            } => encode(format_args!("N {index} {errno} {start} {end}\n")),
            Event::Refused { index } => encode(format_args!("Q {index}\n")),
            Event::Thawed {
                index,
                errno,
                start,
                end,
            } => encode(format_args!("X {index} {errno} {start} {end}\n")),
            Event::WindowEnding(why) => {
                let mut line = encode(format_args!("k "));
                why.encode_into(&mut line);
                let _ = line.write_str("\n");
                line
            }
            Event::WindowEnded(why) => {
                let mut line = encode(format_args!("K "));
                why.encode_into(&mut line);
                let _ = line.write_str("\n");
                line
            }
            Event::Pong => encode(format_args!("P\n")),
            Event::CommandWatched(ok) => encode(format_args!("c {}\n", u8::from(ok))),
        }
    }

    /// Decode one line (without its newline); `None` for anything malformed.
    pub fn decode(line: &[u8]) -> Option<Self> {
        let mut f = Fields::new(line);
        let e = match f.word()? {
            b"R" => Event::Ready {
                mlocked: f.flag()?,
                oom_protected: f.flag()?,
                expedite_rcu: f.flag()?,
                recorded: f.flag()?,
            },
            b"E" => Event::SetupFailed {
                step: SetupStep::from_word(f.word()?)?,
                index: f.index()?,
                errno: f.errno()?,
            },
            b"A" => Event::Armed {
                deadline_ns: f.number()?,
            },
            b"F" => Event::Frozen {
                index: f.index()?,
                start: f.number()?,
                end: f.number()?,
            },
            b"B" => Event::Busy {
                index: f.index()?,
                start: f.number()?,
                end: f.number()?,
            },
            b"N" => Event::FreezeFailed {
                index: f.index()?,
                errno: f.errno()?,
                start: f.number()?,
                end: f.number()?,
            },
            b"Q" => Event::Refused { index: f.index()? },
            b"X" => Event::Thawed {
                index: f.index()?,
                errno: f.errno()?,
                start: f.number()?,
                end: f.number()?,
            },
            b"k" => Event::WindowEnding(WindowEnd::decode(f.word()?)?),
            b"K" => Event::WindowEnded(WindowEnd::decode(f.word()?)?),
            b"P" => Event::Pong,
            b"c" => Event::CommandWatched(f.flag()?),
            _ => return None,
        };
        f.end().then_some(e)
    }
}

/// Space-separated fields of a line.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(line: &'a [u8]) -> Self {
        Fields { rest: line }
    }

    fn word(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (w, rest) = match self.rest.iter().position(|&b| b == b' ') {
            Some(p) => (&self.rest[..p], &self.rest[p + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        (!w.is_empty()).then_some(w)
    }

    fn number(&mut self) -> Option<u64> {
        parse_u64(self.word()?)
    }

    fn index(&mut self) -> Option<usize> {
        usize::try_from(self.number()?).ok()
    }

    fn errno(&mut self) -> Option<i32> {
        i32::try_from(self.number()?).ok()
    }

    fn flag(&mut self) -> Option<bool> {
        match self.word()? {
            b"0" => Some(false),
            b"1" => Some(true),
            _ => None,
        }
    }

    fn end(&self) -> bool {
        self.rest.is_empty()
    }
}

/// A decimal u64 without allocation; `None` for anything else (empty, sign, overflow).
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Splits a byte stream into lines in a fixed buffer; an over-long line is dropped whole.
pub struct LineSplitter<const N: usize> {
    line: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for LineSplitter<N> {
    fn default() -> Self {
        LineSplitter {
            line: [0; N],
            len: 0,
            overflow: false,
        }
    }
}

impl<const N: usize> LineSplitter<N> {
    /// Feed `bytes`, calling `each` with every complete line (without its newline); stops and
    /// returns the number of bytes consumed when `each` returns false.
    pub fn feed(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8]) -> bool) -> usize {
        for (k, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                let go_on = self.overflow || each(&self.line[..self.len]);
                self.len = 0;
                self.overflow = false;
                if !go_on {
                    return k + 1;
                }
            } else if self.len < N {
                self.line[self.len] = b;
                self.len += 1;
            } else {
                self.overflow = true;
            }
        }
        bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_request(r: Request) {
        let line = r.encode();
        let bytes = line.as_bytes();
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(Request::decode(&bytes[..bytes.len() - 1]), Some(r), "{r:?}");
    }

    fn round_trip_event(e: Event) {
        let line = e.encode();
        let bytes = line.as_bytes();
        assert_eq!(Event::decode(&bytes[..bytes.len() - 1]), Some(e), "{e:?}");
    }

    #[test]
    fn every_message_round_trips() {
        for r in [
            Request::OpenWindow,
            Request::Freeze(3),
            Request::ThawAll,
            Request::Command {
                pid: 4_194_304,
                start_time: u64::MAX,
            },
            Request::HookFroze(0),
            Request::HookRunning {
                index: 1,
                pid: 77,
                start_time: 12345,
            },
            Request::HookThawed(7),
            Request::Ping,
            Request::Done,
        ] {
            round_trip_request(r);
        }
        for e in [
            Event::Ready {
                mlocked: true,
                oom_protected: false,
                expedite_rcu: true,
                recorded: false,
            },
            Event::SetupFailed {
                step: SetupStep::Changed,
                index: 2,
                errno: 0,
            },
            Event::Armed {
                deadline_ns: u64::MAX,
            },
            Event::Frozen {
                index: 1,
                start: u64::MAX,
                end: u64::MAX,
            },
            Event::Busy {
                index: 0,
                start: 1,
                end: 2,
            },
            Event::FreezeFailed {
                index: 9,
                errno: 95,
                start: 1,
                end: 2,
            },
            Event::Refused { index: 4 },
            Event::Thawed {
                index: 1,
                errno: 22,
                start: 5,
                end: 6,
            },
            Event::WindowEnding(WindowEnd::Deadline),
            Event::WindowEnding(WindowEnd::Signal(9)),
            Event::WindowEnded(WindowEnd::Signal(15)),
            Event::WindowEnded(WindowEnd::Deadline),
            Event::WindowEnded(WindowEnd::ControllerGone),
            Event::WindowEnded(WindowEnd::Requested),
            Event::WindowEnded(WindowEnd::Error),
            Event::Pong,
            Event::CommandWatched(true),
        ] {
            round_trip_event(e);
        }
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            &b""[..],
            b"Z",
            b"Z x",
            b"Z 1 2",
            b"Z -1",
            b"C 1",
            b"Q",
            b"W extra",
            b"Z 99999999999999999999999",
        ] {
            assert_eq!(
                Request::decode(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(Event::decode(b"K signal-"), None);
        assert_eq!(Event::decode(b"R 2 0 1 1"), None);
        assert_eq!(Event::decode(b"R 1 1 1"), None);
    }

    #[test]
    fn splitter_drops_overlong_lines_and_stops_on_request() {
        let mut s = LineSplitter::<4>::default();
        let mut got = Vec::new();
        let used = s.feed(b"ab\ntoolong\nZ 1\nD\nP\n", |l| {
            got.push(l.to_vec());
            l != b"D"
        });
        assert_eq!(got, vec![b"ab".to_vec(), b"Z 1".to_vec(), b"D".to_vec()]);
        assert_eq!(used, 17);
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Request::decode(&bytes);
            let _ = Event::decode(&bytes);
        }
    }
}

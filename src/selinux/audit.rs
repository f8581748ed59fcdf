//! Pure parser for SELinux `AVC` and `USER_AVC` audit records, and the "is this denial about the
//! Azure Linux Agent" rule (selinux.md §4).
//!
//! Text in, typed records out; no I/O. The caller reads the files (`audit.log`, its rotated
//! copies, or `journalctl -o json` output) and hands the text over.
//!
//! # Inputs understood
//!
//! * auditd's `audit.log` lines, `log_format = RAW` or `ENRICHED`:
//!   `[node=<host> ]type=AVC msg=audit(<secs>.<ms>:<serial>): avc:  denied  { perm... } for  k=v...`
//!   `ENRICHED` appends interpreted fields after one 0x1D byte (`AUDIT_INTERP_SEPARATOR`); they
//!   land in [`Avc::enriched`] and never override the raw fields.
//! * `type=USER_AVC` from userspace object managers (systemd, dbus). The AVC text is nested in
//!   `msg='avc:  denied  { … } for … '`; the fields before `msg='` describe the sending object
//!   manager and land in [`Avc::sender`].
//! * Kernel-log copies (`dmesg`, `journalctl -k`, `/var/log/messages`):
//!   `… audit: type=1400 audit(<secs>.<ms>:<serial>): avc:  denied …` (numeric types 1400/1107).
//! * `journalctl -o json` objects written by `systemd-journald-audit`: `MESSAGE` is
//!   `"<TYPE_NAME> <text after 'audit(…): '>"`, the time comes from `_SOURCE_REALTIME_TIMESTAMP`
//!   and the serial from `_AUDIT_ID`. `MESSAGE` is a JSON string, or an array of byte values
//!   when journald considered it binary. See [`JOURNALCTL_ARGS`].
//!
//! # Value decoding (as auditd/auparse do it)
//!
//! The kernel (`audit_log_untrustedstring`) and libaudit print an untrusted string in double
//! quotes when it is clean, and as **unquoted uppercase hex** when it contains `"`, a byte below
//! 0x21 or above 0x7e. So for the untrusted-string fields (auparse's `AUPARSE_TYPE_ESCAPED*`
//! set plus the kernel's `dev`, `srawcon`, `trawcon`: see [`is_untrusted_field`]) an unquoted
//! value of even length made only of hex digits is decoded. Anything else unquoted is kept
//! verbatim ("keep the raw value when decoding fails"). `(null)`, `(none)` and `?` mean
//! "absent". A decoded value that starts with a NUL byte is an abstract unix-socket name and is
//! shown as `@name`; `proctitle` has its NUL argument separators turned into spaces; any other
//! decoded value stops at its first NUL (auparse works on C strings). Invalid UTF-8 is replaced
//! lossily.
//!
//! # Why hand-written splitting
//!
//! The record grammar is a flat `key=value` list with three value forms (`"…"`, `'…'` for the
//! nested USER_AVC message, `{…}` in enriched `SADDR`) plus the `avc:  denied  { … } for` head.
//! A regex crate would not remove the quote and hex rules, would add a dependency, and a
//! backtracking pattern over attacker-influenced text (file names end up in these lines) is the
//! classic catastrophe. The splitter below is a single forward scan per line: linear time, no
//! recursion, no panics on any input.

use std::collections::{HashMap, HashSet};

/// The byte auditd puts between a record and its interpreted (enriched) fields.
pub const INTERP_SEPARATOR: char = '\u{1d}';

/// auditd's built-in `log_file` when `auditd.conf` does not set one.
pub const DEFAULT_AUDIT_LOG: &str = "/var/log/audit/audit.log";

/// auditd's built-in `num_logs` (the live log plus `num_logs - 1` rotated copies).
pub const DEFAULT_NUM_LOGS: u32 = 5;

/// The agent's state directory when `/etc/waagent.conf` does not set `Lib.Dir`.
pub const DEFAULT_AGENT_LIB_DIR: &str = "/var/lib/waagent";

/// Arguments for the journald fallback: every `AVC` and `USER_AVC` record as one JSON object a
/// line. `--all` matters: without it `journalctl -o json` prints `null` for fields over 4096
/// bytes. Add `-b` or `--since` for a time window.
pub const JOURNALCTL_ARGS: &[&str] = &[
    "-o",
    "json",
    "--all",
    "--no-pager",
    "_AUDIT_TYPE_NAME=AVC",
    "_AUDIT_TYPE_NAME=USER_AVC",
];

/// Upper bound for [`rotated_names`] (auditd accepts `num_logs` up to 999).
pub const MAX_ROTATED: usize = 1000;

/// Which record type carried the AVC text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AvcKind {
    /// `type=AVC` (1400): decided by the kernel.
    #[default]
    Avc,
    /// `type=USER_AVC` (1107): decided by a userspace object manager (systemd, dbus).
    UserAvc,
}

impl AvcKind {
    /// The audit type name (`AVC`, `USER_AVC`).
    pub fn type_name(self) -> &'static str {
        match self {
            AvcKind::Avc => "AVC",
            AvcKind::UserAvc => "USER_AVC",
        }
    }

    /// The numeric audit record type (1400, 1107).
    pub fn type_number(self) -> u32 {
        match self {
            AvcKind::Avc => 1400,
            AvcKind::UserAvc => 1107,
        }
    }

    /// Recognises `AVC`/`1400`/`AUDIT1400` and `USER_AVC`/`1107`/`AUDIT1107`.
    pub fn from_type(s: &str) -> Option<AvcKind> {
        match s {
            "AVC" | "1400" | "AUDIT1400" => Some(AvcKind::Avc),
            "USER_AVC" | "1107" | "AUDIT1107" => Some(AvcKind::UserAvc),
            _ => None,
        }
    }
}

/// The event id `audit(<secs>.<millis>:<serial>)`. Records with the same stamp (and node)
/// belong to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AuditStamp {
    /// Seconds since the epoch.
    pub secs: u64,
    /// Milliseconds within the second.
    pub millis: u32,
    /// The kernel's per-boot event serial number.
    pub serial: u64,
}

/// How a decision affects the agent (selinux.md §4.3, last paragraph).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `denied` with `permissive=0`: the access was refused.
    Blocking,
    /// `denied` with `permissive=1`: logged only (permissive mode or permissive domain); it
    /// would be refused if enforcing.
    WouldBlockIfEnforcing,
    /// `denied` without `permissive=` (kernels before 4.17, older systemd): unknown.
    DeniedModeUnknown,
    /// `granted` (an `auditallow` rule fired): not a problem.
    Granted,
}

/// One parsed AVC decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Avc {
    /// Record type.
    pub kind: AvcKind,
    /// `node=` prefix (auditd `name_format`), if any.
    pub node: Option<String>,
    /// Event id; `None` when the header was not in raw form (e.g. `ausearch -i` output).
    pub stamp: Option<AuditStamp>,
    /// `denied` (true) or `granted` (false).
    pub denied: bool,
    /// The permissions between the braces, in log order (`0x…` for unnamed bits kept as-is).
    pub permissions: Vec<String>,
    /// Subject pid (`pid=` inside the AVC text; USER_AVC from systemd has none).
    pub pid: Option<u32>,
    /// Subject command name (hex-decoded).
    pub comm: Option<String>,
    /// `exe=` inside the AVC text. For USER_AVC this is the object manager's executable
    /// (e.g. `/usr/lib/systemd/systemd`), not the subject's.
    pub exe: Option<String>,
    /// Object path (hex-decoded; abstract sockets as `@name`).
    pub path: Option<String>,
    /// Object name, usually a basename (hex-decoded).
    pub name: Option<String>,
    /// Device (superblock id) of the object.
    pub dev: Option<String>,
    /// Inode number of the object.
    pub ino: Option<u64>,
    /// Source (subject) context.
    pub scontext: Option<String>,
    /// Target (object) context.
    pub tcontext: Option<String>,
    /// Object class (`file`, `dir`, `service`, …); `(null)` becomes `None`.
    pub tclass: Option<String>,
    /// `permissive=1` → `Some(true)`, `permissive=0` → `Some(false)`, missing → `None`.
    pub permissive: Option<bool>,
    /// Interpreted fields after 0x1D, keys as written (uppercase), quotes removed.
    pub enriched: Vec<(String, String)>,
    /// `cmdline=` (systemd USER_AVC: the client's command line).
    pub cmdline: Option<String>,
    /// USER_AVC only: the fields before `msg='` (the sender: `pid`, `uid`, `auid`, `ses`,
    /// `subj`), decoded.
    pub sender: Vec<(String, String)>,
    /// Every other field of the AVC text (`capability`, `ssid`, `srawcon`, `spid`, `hostname`…),
    /// decoded where the field is untrusted, verbatim otherwise.
    pub other: Vec<(String, String)>,
    /// `exe=` of the `SYSCALL` record of the same event (filled by [`parse_log`]).
    pub syscall_exe: Option<String>,
    /// Decoded `PROCTITLE` of the same event, arguments joined by spaces (filled by
    /// [`parse_log`]).
    pub proctitle: Option<String>,
}

impl Avc {
    /// Blocking / would block / unknown / granted.
    pub fn verdict(&self) -> Verdict {
        match (self.denied, self.permissive) {
            (false, _) => Verdict::Granted,
            (true, Some(false)) => Verdict::Blocking,
            (true, Some(true)) => Verdict::WouldBlockIfEnforcing,
            (true, None) => Verdict::DeniedModeUnknown,
        }
    }

    /// The type field of `scontext` (`unconfined_service_t`).
    pub fn scontext_type(&self) -> Option<&str> {
        self.scontext.as_deref().and_then(context_type)
    }

    /// The type field of `tcontext` (`var_lib_t`).
    pub fn tcontext_type(&self) -> Option<&str> {
        self.tcontext.as_deref().and_then(context_type)
    }

    /// Value of a field from [`Avc::other`] (first occurrence).
    pub fn other_field(&self, key: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when the event happened at or after `since_secs` (epoch seconds). Records without
    /// a stamp are kept (true): dropping a denial is worse than showing an old one.
    pub fn is_since(&self, since_secs: u64) -> bool {
        self.stamp.is_none_or(|s| s.secs >= since_secs)
    }
}

/// The type part of a `user:role:type[:level]` context (the level may itself contain `:`).
pub fn context_type(context: &str) -> Option<&str> {
    let mut parts = context.splitn(4, ':');
    let _user = parts.next()?;
    let _role = parts.next()?;
    let ty = parts.next()?;
    (!ty.is_empty()).then_some(ty)
}

// ------------------------------------------------------------------------------------------
// Tokenising
// ------------------------------------------------------------------------------------------

/// `key=value` pairs of a record body, values still raw (quotes, hex). Tokens without `=`
/// (`avc:`, `for`, stray words) are skipped.
///
/// A quoted value ends at the first matching quote that is followed by whitespace or the end
/// (systemd's `cmdline="…"` contains spaces), else at the next matching quote. The position of
/// the next "quote + whitespace" is cached per quote character so that a line full of
/// unterminated-looking quotes is still scanned in linear time.
struct Fields<'a> {
    s: &'a str,
    pos: usize,
    /// Per quote (`"`, `'`): `(searched_from, next closing quote at or after it)`.
    close: [Option<(usize, Option<usize>)>; 2],
}

impl<'a> Fields<'a> {
    fn new(s: &'a str) -> Self {
        Fields {
            s,
            pos: 0,
            close: [None, None],
        }
    }

    /// Absolute index of the first `quote` at or after `from` that is followed by whitespace
    /// or the end of the text.
    fn closing_quote(&mut self, from: usize, quote: u8) -> Option<usize> {
        let slot = usize::from(quote != b'"');
        if let Some((searched_from, found)) = self.close[slot] {
            if searched_from <= from {
                match found {
                    None => return None,
                    Some(f) if f >= from => return Some(f),
                    Some(_) => {}
                }
            }
        }
        let b = self.s.as_bytes();
        let found = (from..b.len())
            .find(|&i| b[i] == quote && b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()));
        self.close[slot] = Some((from, found));
        found
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let b = s.as_bytes();
        loop {
            while b.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
                self.pos += 1;
            }
            if self.pos >= b.len() {
                return None;
            }
            let start = self.pos;
            // Key: up to '=' or whitespace.
            let key_end = (start..b.len())
                .find(|&i| b[i] == b'=' || b[i].is_ascii_whitespace())
                .unwrap_or(b.len());
            if b.get(key_end) != Some(&b'=') {
                // A bare word: skip it.
                self.pos = key_end;
                continue;
            }
            let v = key_end + 1;
            let end = match b.get(v) {
                Some(&q @ (b'"' | b'\'')) => match self.closing_quote(v + 1, q) {
                    Some(i) => i + 1,
                    None => (v + 1..b.len())
                        .find(|&i| b[i] == q)
                        .map_or(b.len(), |i| i + 1),
                },
                Some(b'{') => (v..b.len())
                    .find(|&i| b[i] == b'}')
                    .map_or(b.len(), |i| i + 1),
                _ => (v..b.len())
                    .find(|&i| b[i].is_ascii_whitespace())
                    .unwrap_or(b.len()),
            };
            self.pos = end;
            if key_end == start {
                continue;
            }
            // All indices sit next to ASCII bytes, so they are char boundaries.
            return Some((&s[start..key_end], &s[v..end]));
        }
    }
}

/// Untrusted-string fields: printed quoted when clean, as hex otherwise. auparse's
/// `AUPARSE_TYPE_ESCAPED`, `_ESCAPED_FILE`, `_ESCAPED_KEY` and `_PROCTITLE` names
/// (`auparse/typetab.h`), plus the kernel's `dev`, `srawcon` and `trawcon` (lsm_audit.c /
/// avc.c log them with `audit_log_untrustedstring`).
pub fn is_untrusted_field(key: &str) -> bool {
    const UNTRUSTED: &[&str] = &[
        "path",
        "comm",
        "exe",
        "file",
        "name",
        "watch",
        "cwd",
        "cmd",
        "acct",
        "dir",
        "key",
        "vm",
        "old-chardev",
        "new-chardev",
        "old-disk",
        "new-disk",
        "old-fs",
        "new-fs",
        "old-net",
        "new-net",
        "device",
        "cgroup",
        "old-rng",
        "new-rng",
        "ocomm",
        "grp",
        "new_group",
        "invalid_context",
        "sw",
        "root_dir",
        "proctitle",
        "dev",
        "srawcon",
        "trawcon",
    ];
    UNTRUSTED.iter().any(|u| u.eq_ignore_ascii_case(key))
}

fn is_even_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn hex_nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Hex-decodes an even-length all-hex string; `None` otherwise.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !is_even_hex(s) {
        return None;
    }
    Some(
        s.as_bytes()
            .chunks_exact(2)
            .map(|p| (hex_nibble(p[0]) << 4) | hex_nibble(p[1]))
            .collect(),
    )
}

/// Bytes of a hex-encoded untrusted value to display text (see the module doc).
fn hex_bytes_to_text(key: &str, bytes: &[u8]) -> String {
    if key.eq_ignore_ascii_case("proctitle") {
        let trimmed = bytes
            .iter()
            .rposition(|&c| c != 0)
            .map_or(&bytes[..0], |i| &bytes[..=i]);
        let joined: Vec<u8> = trimmed
            .iter()
            .map(|&c| if c == 0 { b' ' } else { c })
            .collect();
        return String::from_utf8_lossy(&joined).into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(&[0u8]) {
        // Abstract unix-socket name (auparse skips the leading "00").
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        return format!("@{}", String::from_utf8_lossy(&rest[..end]));
    }
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes one raw field value: strips quotes, hex-decodes untrusted fields, maps `(null)`,
/// `(none)`, `?` and the empty string to `None`.
pub fn decode_value(key: &str, raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix('"') {
        return Some(inner.strip_suffix('"').unwrap_or(inner).to_string());
    }
    if let Some(inner) = raw.strip_prefix('\'') {
        return Some(inner.strip_suffix('\'').unwrap_or(inner).to_string());
    }
    if matches!(raw, "" | "?" | "(null)" | "(none)") {
        return None;
    }
    if is_untrusted_field(key) {
        if let Some(bytes) = decode_hex(raw) {
            return Some(hex_bytes_to_text(key, &bytes));
        }
    }
    Some(raw.to_string())
}

/// Enriched values: quoted → unquoted; unquoted uid/gid names that auditd hex-encoded
/// (`escape()` in auparse) → decoded; the rest verbatim.
fn decode_enriched(key: &str, raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('"') {
        return inner.strip_suffix('"').unwrap_or(inner).to_string();
    }
    let upper = key.to_ascii_uppercase();
    if upper.ends_with("UID") || upper.ends_with("GID") {
        if let Some(bytes) = decode_hex(raw) {
            return hex_bytes_to_text(key, &bytes);
        }
    }
    raw.to_string()
}

// ------------------------------------------------------------------------------------------
// Record header
// ------------------------------------------------------------------------------------------

/// A record split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    /// `node=` value, if any.
    pub node: Option<&'a str>,
    /// `type=` value as written (`AVC`, `1400`, `SYSCALL`…).
    pub record_type: &'a str,
    /// Parsed `audit(…)` stamp, if in raw form.
    pub stamp: Option<AuditStamp>,
    /// Everything after `audit(…): ` up to the 0x1D separator.
    pub body: &'a str,
    /// Everything after the 0x1D separator (enriched fields), empty if none.
    pub enriched: &'a str,
}

/// Parses `<secs>.<millis>:<serial>`.
fn parse_stamp(s: &str) -> Option<AuditStamp> {
    let (time, serial) = s.rsplit_once(':')?;
    let (secs, millis) = time.split_once('.')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    if !digits(secs) || !digits(millis) || !digits(serial) {
        return None;
    }
    Some(AuditStamp {
        secs: secs.parse().ok()?,
        millis: millis.parse().ok()?,
        serial: serial.parse().ok()?,
    })
}

/// Splits one log line into node, type, stamp, body and enriched tail. Accepts auditd lines
/// (`[node=X ]type=T msg=audit(…): …`) and kernel-log lines with any prefix
/// (`… audit: type=1400 audit(…): …`). `None` when there is no `type=` token.
pub fn split_record(line: &str) -> Option<RecordHeader<'_>> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (main, enriched) = match line.split_once(INTERP_SEPARATOR) {
        Some((m, e)) => (m, e),
        None => (line, ""),
    };
    // First "type=" that starts a token.
    let type_at = main.match_indices("type=").map(|(i, _)| i).find(|&i| {
        i == 0
            || main.as_bytes()[..i]
                .last()
                .is_some_and(|c| c.is_ascii_whitespace())
    })?;
    let prefix = &main[..type_at];
    let node = prefix
        .split_ascii_whitespace()
        .next_back()
        .and_then(|t| t.strip_prefix("node="))
        .filter(|n| !n.is_empty());
    let after = &main[type_at + "type=".len()..];
    let type_end = after
        .bytes()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(after.len());
    let record_type = &after[..type_end];
    let rest = after[type_end..].trim_start();
    let (stamp, body) = match rest
        .strip_prefix("msg=audit(")
        .or_else(|| rest.strip_prefix("audit("))
    {
        Some(inner) => match inner.find(')') {
            Some(close) => {
                let stamp = parse_stamp(&inner[..close]);
                let tail = inner[close + 1..].trim_start();
                let tail = tail.strip_prefix(':').unwrap_or(tail).trim_start();
                (stamp, tail)
            }
            None => (None, ""),
        },
        None => (None, rest),
    };
    Some(RecordHeader {
        node,
        record_type,
        stamp,
        body,
        enriched,
    })
}

// ------------------------------------------------------------------------------------------
// AVC text
// ------------------------------------------------------------------------------------------

fn set_once(slot: &mut Option<String>, value: Option<String>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Parses the text after `avc:` (`  denied  { perms } for  k=v…`). `None` unless it starts
/// with `denied` or `granted` (USER_AVC also carries "received policyload notice" lines).
fn parse_avc_text(kind: AvcKind, text: &str) -> Option<Avc> {
    let t = text.trim_start();
    let word_end = t
        .bytes()
        .position(|c| c.is_ascii_whitespace() || c == b'{')
        .unwrap_or(t.len());
    let denied = match &t[..word_end] {
        "denied" => true,
        "granted" => false,
        _ => return None,
    };
    let mut rest = t[word_end..].trim_start();
    let mut permissions = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (perms, after) = match inner.find('}') {
            Some(i) => (&inner[..i], &inner[i + 1..]),
            None => (inner, ""),
        };
        permissions = perms.split_ascii_whitespace().map(str::to_string).collect();
        rest = after;
    } else if let Some(after) = rest.strip_prefix("null") {
        rest = after;
    }

    let mut avc = Avc {
        kind,
        denied,
        permissions,
        ..Avc::default()
    };
    for (key, raw) in Fields::new(rest) {
        let value = decode_value(key, raw);
        match key {
            "pid" if avc.pid.is_none() => avc.pid = value.and_then(|v| v.parse().ok()),
            "ino" if avc.ino.is_none() => avc.ino = value.and_then(|v| v.parse().ok()),
            "comm" => set_once(&mut avc.comm, value),
            "exe" => set_once(&mut avc.exe, value),
            "path" => set_once(&mut avc.path, value),
            "name" => set_once(&mut avc.name, value),
            "dev" => set_once(&mut avc.dev, value),
            "scontext" => set_once(&mut avc.scontext, value),
            "tcontext" => set_once(&mut avc.tcontext, value),
            "tclass" => set_once(&mut avc.tclass, value),
            "cmdline" => set_once(&mut avc.cmdline, value),
            "permissive" if avc.permissive.is_none() => {
                avc.permissive = match value.as_deref() {
                    Some("0") => Some(false),
                    Some("1") => Some(true),
                    _ => None,
                }
            }
            _ => avc
                .other
                .push((key.to_string(), value.unwrap_or_else(|| raw.to_string()))),
        }
    }
    Some(avc)
}

/// The AVC text of a record body of `kind`, plus (USER_AVC) the sender part before `msg='`.
fn avc_body(kind: AvcKind, body: &str) -> Option<(&str, &str)> {
    match kind {
        AvcKind::Avc => {
            let b = body.trim_start();
            b.strip_prefix("avc:").map(|t| ("", t))
        }
        AvcKind::UserAvc => {
            let (sender, inner) = match body.find("msg='") {
                Some(i) => {
                    let inner = &body[i + "msg='".len()..];
                    let inner = inner.rfind('\'').map_or(inner, |j| &inner[..j]);
                    (&body[..i], inner)
                }
                None => ("", body),
            };
            inner.trim_start().strip_prefix("avc:").map(|t| (sender, t))
        }
    }
}

fn parse_body(kind: AvcKind, body: &str) -> Option<Avc> {
    let (sender, text) = avc_body(kind, body)?;
    let mut avc = parse_avc_text(kind, text)?;
    avc.sender = Fields::new(sender)
        .map(|(k, raw)| {
            let v = decode_value(k, raw).unwrap_or_else(|| raw.to_string());
            (k.to_string(), v)
        })
        .collect();
    Some(avc)
}

fn parse_enriched(tail: &str) -> Vec<(String, String)> {
    Fields::new(tail)
        .map(|(k, raw)| (k.to_string(), decode_enriched(k, raw)))
        .collect()
}

/// Parses one `audit.log` (or kernel-log) line. `None` for anything that is not an SELinux
/// `AVC`/`USER_AVC` decision: other record types, AppArmor's `type=AVC apparmor=…` lines,
/// USER_AVC notices (`avc:  received policyload notice`), garbage.
pub fn parse_record(line: &str) -> Option<Avc> {
    let header = split_record(line)?;
    let kind = AvcKind::from_type(header.record_type)?;
    let mut avc = parse_body(kind, header.body)?;
    avc.node = header.node.map(str::to_string);
    avc.stamp = header.stamp;
    avc.enriched = parse_enriched(header.enriched);
    Some(avc)
}

// ------------------------------------------------------------------------------------------
// journald
// ------------------------------------------------------------------------------------------

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|b| b.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_u64(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Parses one line of `journalctl -o json` output (see [`JOURNALCTL_ARGS`]).
///
/// Audit-transport entries are recognised by `_AUDIT_TYPE_NAME` (or numeric `_AUDIT_TYPE`);
/// `MESSAGE` then starts with the type name, which is dropped. The stamp is rebuilt from
/// `_SOURCE_REALTIME_TIMESTAMP` (µs, derived by journald from `audit(secs.ms:…)`; falls back
/// to `__REALTIME_TIMESTAMP`) and `_AUDIT_ID`. Entries without audit fields (e.g. from
/// `journalctl -k -o json`) are parsed as kernel-log lines. [`Avc::node`] stays `None`.
pub fn parse_journal_json(line: &str) -> Option<Avc> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let obj = value.as_object()?;
    let message = json_text(obj.get("MESSAGE")?)?;
    let type_name = obj
        .get("_AUDIT_TYPE_NAME")
        .and_then(json_text)
        .or_else(|| obj.get("_AUDIT_TYPE").and_then(json_text));
    let Some(type_name) = type_name else {
        return parse_record(&message);
    };
    let kind = AvcKind::from_type(type_name.trim())?;
    let msg = message.trim_start();
    let first_end = msg
        .bytes()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(msg.len());
    let body = if AvcKind::from_type(&msg[..first_end]).is_some() {
        &msg[first_end..]
    } else {
        msg
    };
    let mut avc = parse_body(kind, body)?;
    let micros = json_u64(obj.get("_SOURCE_REALTIME_TIMESTAMP"))
        .or_else(|| json_u64(obj.get("__REALTIME_TIMESTAMP")));
    let serial = json_u64(obj.get("_AUDIT_ID"));
    if let (Some(us), Some(serial)) = (micros, serial) {
        avc.stamp = Some(AuditStamp {
            secs: us / 1_000_000,
            // < 1000 by construction.
            millis: u32::try_from((us % 1_000_000) / 1000).unwrap_or(0),
            serial,
        });
    }
    Some(avc)
}

// ------------------------------------------------------------------------------------------
// Whole logs and event correlation
// ------------------------------------------------------------------------------------------

type EventKey = (Option<String>, AuditStamp);

/// Parses a whole log: `audit.log` text, kernel-log text, or `journalctl -o json` output
/// (lines starting with `{`), in any mix. Non-AVC lines are ignored. For kernel AVCs the
/// `SYSCALL` (`exe=`) and `PROCTITLE` records of the same event (same node and stamp; they
/// follow the AVC line) fill [`Avc::syscall_exe`] and [`Avc::proctitle`].
pub fn parse_log(text: &str) -> Vec<Avc> {
    let mut avcs: Vec<Avc> = text
        .lines()
        .filter_map(|line| {
            if line.trim_start().starts_with('{') {
                parse_journal_json(line)
            } else {
                parse_record(line)
            }
        })
        .collect();

    let wanted: HashSet<EventKey> = avcs
        .iter()
        .filter(|a| a.kind == AvcKind::Avc)
        .filter_map(|a| a.stamp.map(|s| (a.node.clone(), s)))
        .collect();
    if wanted.is_empty() {
        return avcs;
    }

    let mut exes: HashMap<EventKey, String> = HashMap::new();
    let mut titles: HashMap<EventKey, String> = HashMap::new();
    for line in text.lines() {
        let Some(h) = split_record(line) else {
            continue;
        };
        let is_syscall = matches!(h.record_type, "SYSCALL" | "1300");
        let is_title = matches!(h.record_type, "PROCTITLE" | "1327");
        if !is_syscall && !is_title {
            continue;
        }
        let Some(stamp) = h.stamp else { continue };
        let key = (h.node.map(str::to_string), stamp);
        if !wanted.contains(&key) {
            continue;
        }
        let field = if is_syscall { "exe" } else { "proctitle" };
        let Some(value) = Fields::new(h.body)
            .find(|(k, _)| *k == field)
            .and_then(|(k, raw)| decode_value(k, raw))
        else {
            continue;
        };
        let map = if is_syscall { &mut exes } else { &mut titles };
        map.entry(key).or_insert(value);
    }
    for avc in avcs.iter_mut().filter(|a| a.kind == AvcKind::Avc) {
        if let Some(stamp) = avc.stamp {
            let key = (avc.node.clone(), stamp);
            avc.syscall_exe = exes.get(&key).cloned();
            avc.proctitle = titles.get(&key).cloned();
        }
    }
    avcs
}

// ------------------------------------------------------------------------------------------
// selinux.md §4.3: agent-related denials
// ------------------------------------------------------------------------------------------

/// Site-specific inputs of the matching rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMatch {
    /// `Lib.Dir` from `/etc/waagent.conf`. `/var/lib/waagent` is matched as well in any case,
    /// because extensions hard-code it.
    pub lib_dir: String,
    /// Observed agent domains (type field of `/proc/<pid>/attr/current` of the agent
    /// processes), e.g. `unconfined_service_t`.
    pub agent_domains: Vec<String>,
}

impl Default for AgentMatch {
    fn default() -> Self {
        AgentMatch {
            lib_dir: DEFAULT_AGENT_LIB_DIR.to_string(),
            agent_domains: Vec::new(),
        }
    }
}

/// Why a record was considered agent-related.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchReason {
    /// `path=` is under an agent location or contains an agent token.
    Path,
    /// `name=` contains an agent location/token or is `waagent` / `safefreeze`.
    Name,
    /// A `tclass=service` USER_AVC on `waagent.service` / `walinuxagent.service`.
    ServiceUnit,
    /// The `scontext` type is an observed agent domain.
    Domain,
    /// The event's SYSCALL `exe`, PROCTITLE (or a kernel AVC's own `exe`) mentions the agent.
    Process,
    /// `comm` is an agent-like process name. Only reported next to another reason; never
    /// sufficient on its own.
    Comm,
}

/// Directories whose contents belong to the agent or the backup extension.
const AGENT_DIRS: &[&str] = &["/var/log/azure", "/etc/azure"];
/// Files of the agent.
const AGENT_FILES: &[&str] = &["/var/log/waagent.log", "/etc/waagent.conf"];
/// Substrings of agent and extension directory names.
const AGENT_TOKENS: &[&str] = &["WALinuxAgent", "Microsoft.Azure.RecoveryServices"];
/// Exact `name=` values.
const AGENT_NAMES: &[&str] = &["waagent", "safefreeze"];
/// Unit file names (RHEL; Debian/Ubuntu).
const AGENT_UNITS: &[&str] = &["waagent.service", "walinuxagent.service"];
/// Substrings of the agent's command lines and executables.
const AGENT_PROCESS_TOKENS: &[&str] = &["waagent", "WALinuxAgent", "VMSnapshot", "handle.py"];

/// `dir` occurs in `hay` as a whole path component prefix (followed by `/` or the end).
fn contains_dir(hay: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return false;
    }
    hay.match_indices(dir)
        .any(|(i, _)| hay.as_bytes().get(i + dir.len()).is_none_or(|&c| c == b'/'))
}

fn is_agent_location(s: &str, m: &AgentMatch) -> bool {
    let lib = m.lib_dir.trim_end_matches('/');
    let custom_lib = lib.len() > 1 && lib.starts_with('/') && contains_dir(s, lib);
    custom_lib
        || contains_dir(s, DEFAULT_AGENT_LIB_DIR)
        || AGENT_DIRS.iter().any(|d| contains_dir(s, d))
        || AGENT_FILES.iter().any(|f| s.contains(f))
        || AGENT_TOKENS.iter().any(|t| s.contains(t))
}

/// `comm` values the agent and its extensions run under (selinux.md §2.1 / §4.3).
pub fn is_agent_comm(comm: &str) -> bool {
    matches!(
        comm,
        "waagent" | "safefreeze" | "handle.sh" | "python" | "python3" | "sh" | "bash" | "fsfreeze"
    ) || comm.starts_with("python2")
        || comm
            .strip_prefix("python3.")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// All reasons `avc` is agent-related under `m` (empty: not related).
pub fn agent_match_reasons(avc: &Avc, m: &AgentMatch) -> Vec<MatchReason> {
    let mut reasons = Vec::new();
    if avc.path.as_deref().is_some_and(|p| is_agent_location(p, m)) {
        reasons.push(MatchReason::Path);
    }
    if avc
        .name
        .as_deref()
        .is_some_and(|n| AGENT_NAMES.contains(&n) || is_agent_location(n, m))
    {
        reasons.push(MatchReason::Name);
    }
    if avc.tclass.as_deref() == Some("service")
        && avc.path.as_deref().is_some_and(|p| {
            let base = p.rsplit('/').next().unwrap_or(p);
            AGENT_UNITS.contains(&base)
        })
    {
        reasons.push(MatchReason::ServiceUnit);
    }
    if avc
        .scontext_type()
        .is_some_and(|t| m.agent_domains.iter().any(|d| d == t))
    {
        reasons.push(MatchReason::Domain);
    }
    let mentions_agent = |s: &str| AGENT_PROCESS_TOKENS.iter().any(|t| s.contains(t));
    let own_exe = match avc.kind {
        AvcKind::Avc => avc.exe.as_deref(),
        // USER_AVC's exe is the object manager (systemd, dbus), not the subject.
        AvcKind::UserAvc => None,
    };
    if [
        avc.syscall_exe.as_deref(),
        avc.proctitle.as_deref(),
        own_exe,
    ]
    .into_iter()
    .flatten()
    .any(mentions_agent)
    {
        reasons.push(MatchReason::Process);
    }
    if !reasons.is_empty() && avc.comm.as_deref().is_some_and(is_agent_comm) {
        reasons.push(MatchReason::Comm);
    }
    reasons
}

/// selinux.md §4.3 with site inputs: any of path/name location, agent unit, observed agent
/// domain, or agent process (SYSCALL exe / PROCTITLE). `comm` alone never matches.
pub fn is_agent_related_with(avc: &Avc, m: &AgentMatch) -> bool {
    !agent_match_reasons(avc, m).is_empty()
}

/// selinux.md §4.3 with defaults: `Lib.Dir = /var/lib/waagent` and no observed agent domain
/// (use [`is_agent_related_with`] to pass the live domain).
pub fn is_agent_related(avc: &Avc) -> bool {
    is_agent_related_with(avc, &AgentMatch::default())
}

// ------------------------------------------------------------------------------------------
// auditd.conf and rotated logs
// ------------------------------------------------------------------------------------------

/// The `auditd.conf` settings that decide where the log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditdLogSettings {
    /// `log_file` (default [`DEFAULT_AUDIT_LOG`]); `None` when logging to disk is off
    /// (`write_logs = no`, or the old `log_format = NOLOG`) or the value is not an absolute
    /// path with a directory of at least 4 characters (auditd refuses to start then).
    pub log_file: Option<String>,
    /// `num_logs` (default 5): the live log plus `num_logs - 1` rotated copies.
    pub num_logs: u32,
    /// `max_log_file_action = keep_logs`: rotated copies are never deleted, so there may be
    /// more than `num_logs - 1`; probe `rotated_names` until a name is missing.
    pub keep_logs: bool,
}

/// Reads the log settings from `auditd.conf` text. auditd's own parser wants
/// `keyword = value` with spaces around `=` and one value token; this is lenient (spaces
/// optional, trailing tokens ignored, keywords case-insensitive). Later lines override
/// earlier ones, as in auditd.
pub fn auditd_log_settings(auditd_conf: &str) -> AuditdLogSettings {
    let mut log_file: Option<String> = None;
    let mut write_logs = true;
    let mut num_logs = DEFAULT_NUM_LOGS;
    let mut keep_logs = false;
    for line in auditd_conf.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.split_ascii_whitespace().next().unwrap_or("");
        match key.as_str() {
            "log_file" => log_file = Some(value.to_string()),
            "write_logs" => write_logs = !value.eq_ignore_ascii_case("no"),
            "log_format" if value.eq_ignore_ascii_case("nolog") => write_logs = false,
            "num_logs" => {
                if let Ok(n) = value.parse::<u32>() {
                    num_logs = n;
                }
            }
            "max_log_file_action" => keep_logs = value.eq_ignore_ascii_case("keep_logs"),
            _ => {}
        }
    }
    let log_file = if write_logs {
        match log_file {
            None => Some(DEFAULT_AUDIT_LOG.to_string()),
            Some(f) => {
                let dir_len = f.rfind('/').unwrap_or(0);
                (f.starts_with('/') && dir_len >= 4 && dir_len + 1 < f.len()).then_some(f)
            }
        }
    } else {
        None
    };
    AuditdLogSettings {
        log_file,
        num_logs,
        keep_logs,
    }
}

/// The audit log path from `auditd.conf` text: `log_file`, or [`DEFAULT_AUDIT_LOG`] when the
/// key is absent. `None` when auditd writes no log file (`write_logs = no`,
/// `log_format = NOLOG`) or the value is unusable; fall back to journald then.
pub fn audit_log_path(auditd_conf: &str) -> Option<String> {
    auditd_log_settings(auditd_conf).log_file
}

/// `log_file_name` followed by its rotated copies `.1` … `.max`, newest first (auditd renames
/// `audit.log` to `audit.log.1` and shifts the others up). `max` is capped at
/// [`MAX_ROTATED`]; use `num_logs - 1` from [`auditd_log_settings`]. Empty for an empty name.
pub fn rotated_names(log_file_name: &str, max: usize) -> Vec<String> {
    if log_file_name.is_empty() {
        return Vec::new();
    }
    let max = max.min(MAX_ROTATED);
    std::iter::once(log_file_name.to_string())
        .chain((1..=max).map(|i| format!("{log_file_name}.{i}")))
        .collect()
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SNAPSHOT_DIR: &str =
        "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9220.0";

    /// Kernel AVC, audit.log raw format: execute denial on the extension's handle.sh.
    const AVC_HANDLE_SH_ENFORCING: &str = "type=AVC msg=audit(1732530000.123:4521): avc:  denied  { execute } for  pid=3120 comm=\"sh\" name=\"handle.sh\" dev=\"sda2\" ino=393281 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0";

    fn one(line: &str) -> Avc {
        match parse_record(line) {
            Some(a) => a,
            None => panic!("no AVC parsed from {line:?}"),
        }
    }

    // ---------------------------------------------------------------- formats

    #[test]
    fn plain_avc_double_spaces() {
        let a = one(AVC_HANDLE_SH_ENFORCING);
        assert_eq!(a.kind, AvcKind::Avc);
        assert_eq!(a.node, None);
        assert_eq!(
            a.stamp,
            Some(AuditStamp {
                secs: 1_732_530_000,
                millis: 123,
                serial: 4521
            })
        );
        assert!(a.denied);
        assert_eq!(a.permissions, vec!["execute".to_string()]);
        assert_eq!(a.pid, Some(3120));
        assert_eq!(a.comm.as_deref(), Some("sh"));
        assert_eq!(a.name.as_deref(), Some("handle.sh"));
        assert_eq!(a.path, None);
        assert_eq!(a.dev.as_deref(), Some("sda2"));
        assert_eq!(a.ino, Some(393_281));
        assert_eq!(a.scontext.as_deref(), Some("system_u:system_r:fsadm_t:s0"));
        assert_eq!(a.scontext_type(), Some("fsadm_t"));
        assert_eq!(a.tcontext_type(), Some("var_lib_t"));
        assert_eq!(a.tclass.as_deref(), Some("file"));
        assert_eq!(a.permissive, Some(false));
        assert_eq!(a.verdict(), Verdict::Blocking);
        assert!(a.enriched.is_empty() && a.other.is_empty() && a.sender.is_empty());
    }

    #[test]
    fn path_avc_permissive_one_and_several_perms() {
        let line = format!(
            "type=AVC msg=audit(1732530001.007:4530): avc:  denied  {{ read write open }} for  pid=3121 comm=\"safefreeze\" path=\"{SNAPSHOT_DIR}/main/tempPlugin/vmbackup.conf\" dev=\"sda2\" ino=393300 scontext=system_u:system_r:fsadm_t:s0 tcontext=unconfined_u:object_r:user_tmp_t:s0 tclass=file permissive=1"
        );
        let a = one(&line);
        assert_eq!(a.permissions, vec!["read", "write", "open"]);
        assert_eq!(a.stamp.map(|s| s.millis), Some(7));
        assert_eq!(
            a.path.as_deref(),
            Some(format!("{SNAPSHOT_DIR}/main/tempPlugin/vmbackup.conf").as_str())
        );
        assert_eq!(a.permissive, Some(true));
        assert_eq!(a.verdict(), Verdict::WouldBlockIfEnforcing);
    }

    #[test]
    fn hex_comm_and_hex_path_with_spaces() {
        // comm "safe freeze" and path "/var/lib/waagent/My Ext/run.sh" contain a space, so the
        // kernel logs them as unquoted uppercase hex.
        let line = "type=AVC msg=audit(1732530002.500:4540): avc:  denied  { execute } for  pid=3200 comm=7361666520667265657A65 path=2F7661722F6C69622F77616167656E742F4D79204578742F72756E2E7368 dev=\"sda2\" ino=12 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0";
        let a = one(line);
        assert_eq!(a.comm.as_deref(), Some("safe freeze"));
        assert_eq!(a.path.as_deref(), Some("/var/lib/waagent/My Ext/run.sh"));
        assert!(is_agent_related(&a));
    }

    #[test]
    fn hex_rules_edge_cases() {
        // Lowercase hex decodes too (auparse's x2c is case-insensitive).
        assert_eq!(decode_value("comm", "6162").as_deref(), Some("ab"));
        // Odd length or a non-hex digit: not hex, kept raw.
        assert_eq!(decode_value("comm", "abc").as_deref(), Some("abc"));
        assert_eq!(decode_value("path", "2F7X").as_deref(), Some("2F7X"));
        // Quoted values are never hex-decoded.
        assert_eq!(decode_value("comm", "\"cafe\"").as_deref(), Some("cafe"));
        // Trusted fields are never hex-decoded.
        assert_eq!(decode_value("ino", "1234").as_deref(), Some("1234"));
        assert_eq!(decode_value("tclass", "dead").as_deref(), Some("dead"));
        // Absent markers.
        for raw in ["(null)", "?", "(none)", ""] {
            assert_eq!(decode_value("path", raw), None, "{raw}");
        }
        // A '"' inside the name forces hex; it decodes back.
        assert_eq!(
            decode_value(
                "path",
                "2F686F6D652F616C6963652F4D7920226E6F746573222E747874"
            )
            .as_deref(),
            Some("/home/alice/My \"notes\".txt")
        );
        // Abstract unix socket: leading NUL.
        assert_eq!(
            decode_value("path", "00646275732D6162737472616374").as_deref(),
            Some("@dbus-abstract")
        );
        // Invalid UTF-8 is replaced, not an error.
        assert_eq!(decode_value("name", "FF41").as_deref(), Some("\u{FFFD}A"));
    }

    #[test]
    fn node_prefix() {
        let line = format!(
            "node=vm-rhel9.example type=AVC {}",
            &AVC_HANDLE_SH_ENFORCING[9..]
        );
        let a = one(&line);
        assert_eq!(a.node.as_deref(), Some("vm-rhel9.example"));
        assert_eq!(a.name.as_deref(), Some("handle.sh"));
        assert_eq!(a.stamp.map(|s| s.serial), Some(4521));
    }

    #[test]
    fn user_avc_from_systemd_on_waagent_service() {
        let line = "type=USER_AVC msg=audit(1732530100.456:812): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  { start } for auid=0 uid=0 gid=0 path=\"/usr/lib/systemd/system/waagent.service\" cmdline=\"/usr/bin/systemctl start waagent.service\" scontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tcontext=system_u:object_r:systemd_unit_file_t:s0 tclass=service permissive=0  exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'";
        let a = one(line);
        assert_eq!(a.kind, AvcKind::UserAvc);
        assert_eq!(a.permissions, vec!["start"]);
        assert_eq!(a.pid, None);
        assert_eq!(
            a.path.as_deref(),
            Some("/usr/lib/systemd/system/waagent.service")
        );
        assert_eq!(
            a.cmdline.as_deref(),
            Some("/usr/bin/systemctl start waagent.service")
        );
        assert_eq!(a.exe.as_deref(), Some("/usr/lib/systemd/systemd"));
        assert_eq!(a.tclass.as_deref(), Some("service"));
        assert_eq!(a.scontext_type(), Some("unconfined_t"));
        assert_eq!(a.permissive, Some(false));
        assert_eq!(a.other_field("auid"), Some("0"));
        assert_eq!(a.other_field("sauid"), Some("0"));
        // hostname=? keeps its raw text in `other`.
        assert_eq!(a.other_field("hostname"), Some("?"));
        assert!(a.sender.contains(&(
            "subj".to_string(),
            "system_u:system_r:init_t:s0".to_string()
        )));
        assert!(a.sender.contains(&("pid".to_string(), "1".to_string())));
        assert_eq!(
            agent_match_reasons(&a, &AgentMatch::default()),
            vec![MatchReason::ServiceUnit]
        );
    }

    #[test]
    fn user_avc_old_systemd_without_permissive() {
        // Fedora 22 era: no permissive=, auid=n/a.
        let line = "type=USER_AVC msg=audit(1442602150.292:763): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  { start } for auid=n/a uid=0 gid=0 path=\"/run/systemd/system/session-4.scope\" cmdline=\"/usr/lib/systemd/systemd-logind\" scontext=system_u:system_r:systemd_logind_t:s0 tcontext=system_u:object_r:systemd_unit_file_t:s0 tclass=service  exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'";
        let a = one(line);
        assert_eq!(a.permissive, None);
        assert_eq!(a.verdict(), Verdict::DeniedModeUnknown);
        assert!(!is_agent_related(&a));
    }

    #[test]
    fn user_avc_dbus_enriched() {
        // dbus-daemon USER_AVC as written by auditd with log_format = ENRICHED.
        let line = "type=USER_AVC msg=audit(1641131903.482:81): pid=901 uid=81 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { send_msg } for msgtype=method_return dest=:1.21 spid=944 tpid=2299 scontext=system_u:system_r:systemd_logind_t:s0 tcontext=system_u:system_r:cloud_init_t:s0 tclass=dbus permissive=0  exe=\"/usr/bin/dbus-daemon\" sauid=81 hostname=? addr=? terminal=?'\u{1d}UID=\"dbus\" AUID=\"unset\" SAUID=\"dbus\"";
        let a = one(line);
        assert_eq!(a.kind, AvcKind::UserAvc);
        assert_eq!(a.permissions, vec!["send_msg"]);
        assert_eq!(a.tclass.as_deref(), Some("dbus"));
        assert_eq!(a.other_field("spid"), Some("944"));
        assert_eq!(a.other_field("dest"), Some(":1.21"));
        assert_eq!(a.exe.as_deref(), Some("/usr/bin/dbus-daemon"));
        assert_eq!(
            a.enriched,
            vec![
                ("UID".to_string(), "dbus".to_string()),
                ("AUID".to_string(), "unset".to_string()),
                ("SAUID".to_string(), "dbus".to_string()),
            ]
        );
        // The enriched tail never leaks into the raw fields.
        assert_eq!(a.other_field("terminal"), Some("?"));
        assert!(!is_agent_related(&a));
    }

    #[test]
    fn kernel_avc_enriched_tail_is_cut() {
        // Defensive: a kernel AVC followed by an interpretation tail (auditd enriches fields
        // such as uid/saddr when present). The raw part must parse unchanged.
        let line = format!(
            "{AVC_HANDLE_SH_ENFORCING}\u{1d}SADDR={{ saddr_fam=local path=/run/x }} AUID=\"unset\" OUID=726F6F742075736572"
        );
        let a = one(&line);
        assert_eq!(a.permissive, Some(false));
        assert_eq!(a.tclass.as_deref(), Some("file"));
        assert_eq!(
            a.enriched,
            vec![
                (
                    "SADDR".to_string(),
                    "{ saddr_fam=local path=/run/x }".to_string()
                ),
                ("AUID".to_string(), "unset".to_string()),
                ("OUID".to_string(), "root user".to_string()),
            ]
        );
    }

    #[test]
    fn granted_avc() {
        let line = "type=AVC msg=audit(1732530200.001:900): avc:  granted  { setsecparam } for  pid=1234 comm=\"tuned\" scontext=system_u:system_r:tuned_t:s0 tcontext=system_u:object_r:security_t:s0 tclass=security";
        let a = one(line);
        assert!(!a.denied);
        assert_eq!(a.permissions, vec!["setsecparam"]);
        assert_eq!(a.permissive, None);
        assert_eq!(a.verdict(), Verdict::Granted);
    }

    #[test]
    fn unnamed_perm_bits_null_class_and_raw_contexts() {
        // dbus with an unknown class: perms printed as hex bits, tclass=(null).
        let a = one(
            "type=USER_AVC msg=audit(1470087122.008:24063): pid=693 uid=81 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { 0x2 } for msgtype=signal interface=org.freedesktop.login1.Manager member=SessionNew dest=org.freedesktop.DBus spid=691 tpid=720 scontext=system_u:system_r:systemd_logind_t:s0 tcontext=system_u:system_r:modemmanager_t:s0 tclass=(null)  exe=\"/usr/bin/dbus-daemon\" sauid=81 hostname=? addr=? terminal=?'",
        );
        assert_eq!(a.permissions, vec!["0x2"]);
        assert_eq!(a.tclass, None);
        // Kernel: invalid target context → tsid= and a hex trawcon (it contains a space).
        let b = one(
            "type=AVC msg=audit(1732530300.000:950): avc:  denied  { getattr } for  pid=77 comm=\"ls\" path=\"/var/lib/waagent/x\" dev=\"sda2\" ino=5 scontext=system_u:system_r:fsadm_t:s0 tsid=1234 tclass=file permissive=0 trawcon=73797374656D5F753A6F626A6563745F723A6261645F743A73302078",
        );
        assert_eq!(b.tcontext, None);
        assert_eq!(b.other_field("tsid"), Some("1234"));
        assert_eq!(
            b.other_field("trawcon"),
            Some("system_u:object_r:bad_t:s0 x")
        );
        // "avc:  denied  null for …" (no audited bits).
        let c = one(
            "type=AVC msg=audit(1.000:1): avc:  denied  null for  pid=1 comm=\"x\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file permissive=1",
        );
        assert!(c.permissions.is_empty());
        assert_eq!(c.permissive, Some(true));
    }

    #[test]
    fn capability_avc_keeps_extra_fields() {
        let a = one(
            "type=AVC msg=audit(1732530400.250:990): avc:  denied  { sys_admin } for  pid=4100 comm=\"safefreeze\" capability=21  scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:system_r:fsadm_t:s0 tclass=capability permissive=0",
        );
        assert_eq!(a.other_field("capability"), Some("21"));
        assert_eq!(a.tclass.as_deref(), Some("capability"));
    }

    #[test]
    fn kmsg_and_syslog_lines() {
        let body = &AVC_HANDLE_SH_ENFORCING["type=AVC msg=".len()..];
        for line in [
            format!("[  123.456789] audit: type=1400 {body}"),
            format!("Nov 25 10:00:00 vm kernel: audit: type=1400 {body}"),
            format!("audit: type=1400 {body}"),
        ] {
            let a = one(&line);
            assert_eq!(a.kind, AvcKind::Avc);
            assert_eq!(a.stamp.map(|s| s.serial), Some(4521));
            assert_eq!(a.node, None);
        }
        // audispd's syslog plugin keeps the node= prefix after the syslog header.
        let a = one(&format!(
            "Nov 25 10:00:00 vm audispd: node=vm2 {AVC_HANDLE_SH_ENFORCING}"
        ));
        assert_eq!(a.node.as_deref(), Some("vm2"));
        // USER_AVC by number.
        let u = one(
            "audit: type=1107 audit(1732530100.456:812): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  { status } for auid=0 uid=0 gid=0 path=\"/usr/lib/systemd/system/walinuxagent.service\" cmdline=\"systemctl status walinuxagent\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=service permissive=1 exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'",
        );
        assert_eq!(u.kind, AvcKind::UserAvc);
        assert!(is_agent_related(&u));
    }

    #[test]
    fn interpreted_ausearch_line_parses_without_stamp() {
        let a = one(
            "type=USER_AVC msg=audit(03/22/2020 11:25:56.123:154) : pid=540 uid=dbus auid=unset ses=unset subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { acquire_svc } for service=com.redhat.tuned spid=1460 scontext=system_u:system_r:tuned_t:s0 tcontext=system_u:system_r:tunned_t:s0 tclass=dbus permissive=0  exe=/usr/bin/dbus-daemon sauid=dbus hostname=? addr=? terminal=?'",
        );
        assert_eq!(a.stamp, None);
        assert_eq!(a.exe.as_deref(), Some("/usr/bin/dbus-daemon"));
        assert!(a.is_since(u64::MAX));
    }

    #[test]
    fn non_avc_records_are_ignored() {
        for line in [
            // AppArmor uses type=AVC too.
            "type=AVC msg=audit(1700000000.100:10): apparmor=\"DENIED\" operation=\"open\" profile=\"/usr/sbin/waagent\" name=\"/var/lib/waagent/x\" pid=1 comm=\"python3\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0",
            // USER_AVC notices are not decisions.
            "type=USER_AVC msg=audit(1515971856.024:10): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  received setenforce notice (enforcing=0)  exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'",
            "type=SYSCALL msg=audit(1732530000.123:4521): arch=c000003e syscall=59 success=no exit=-13 comm=\"sh\" exe=\"/usr/bin/bash\"",
            "type=MAC_STATUS msg=audit(1.1:1): enforcing=1 old_enforcing=0 auid=0 ses=1",
            "----",
            "time->Mon Nov 25 10:00:00 2024",
            "",
            "avc:  denied  { read }",
        ] {
            assert_eq!(parse_record(line), None, "{line}");
        }
    }

    // ---------------------------------------------------------------- journald

    #[test]
    fn journal_json_avc() {
        let line = r#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1732530000125311","__MONOTONIC_TIMESTAMP":"5234234","_BOOT_ID":"0b1c","_TRANSPORT":"audit","_HOSTNAME":"vm","SYSLOG_FACILITY":"4","SYSLOG_IDENTIFIER":"audit","_AUDIT_TYPE":"1400","_AUDIT_TYPE_NAME":"AVC","_AUDIT_ID":"4521","_SOURCE_REALTIME_TIMESTAMP":"1732530000123000","_AUDIT_FIELD_APPARMOR":null,"MESSAGE":"AVC avc:  denied  { execute } for  pid=3120 comm=\"sh\" name=\"handle.sh\" dev=\"sda2\" ino=393281 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0"}"#;
        let a = match parse_journal_json(line) {
            Some(a) => a,
            None => panic!("journal line not parsed"),
        };
        assert_eq!(a, {
            let mut b = one(AVC_HANDLE_SH_ENFORCING);
            b.node = None;
            b
        });
    }

    #[test]
    fn journal_json_binary_message_and_user_avc() {
        // MESSAGE as a byte array (journald stores it as binary when it has control bytes).
        let msg = "USER_AVC pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  { start } for auid=0 uid=0 gid=0 path=\"/usr/lib/systemd/system/waagent.service\" cmdline=\"systemctl start waagent\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=service permissive=0  exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'\u{7}";
        let bytes: Vec<String> = msg.bytes().map(|b| b.to_string()).collect();
        let line = format!(
            "{{\"_AUDIT_TYPE\":1107,\"_AUDIT_ID\":\"812\",\"_SOURCE_REALTIME_TIMESTAMP\":1732530100456000,\"MESSAGE\":[{}]}}",
            bytes.join(",")
        );
        let a = match parse_journal_json(&line) {
            Some(a) => a,
            None => panic!("binary MESSAGE not parsed"),
        };
        assert_eq!(a.kind, AvcKind::UserAvc);
        assert_eq!(
            a.stamp,
            Some(AuditStamp {
                secs: 1_732_530_100,
                millis: 456,
                serial: 812
            })
        );
        assert!(is_agent_related(&a));
    }

    #[test]
    fn journal_json_kernel_transport_and_rejects() {
        let k = r#"{"_TRANSPORT":"kernel","MESSAGE":"audit: type=1400 audit(1732530000.123:4521): avc:  denied  { execute } for  pid=3120 comm=\"sh\" name=\"handle.sh\" dev=\"sda2\" ino=393281 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0"}"#;
        assert_eq!(
            parse_journal_json(k)
                .and_then(|a| a.stamp)
                .map(|s| s.serial),
            Some(4521)
        );
        for bad in [
            "",
            "{}",
            "[]",
            "null",
            r#"{"MESSAGE":null,"_AUDIT_TYPE_NAME":"AVC"}"#,
            r#"{"MESSAGE":[1,2,300],"_AUDIT_TYPE_NAME":"AVC"}"#,
            r#"{"MESSAGE":"SYSCALL arch=c000003e","_AUDIT_TYPE_NAME":"SYSCALL"}"#,
            r#"{"MESSAGE":"AVC apparmor=\"DENIED\"","_AUDIT_TYPE_NAME":"AVC"}"#,
            "{\"MESSAGE\":\"AVC avc:  denied",
        ] {
            assert_eq!(parse_journal_json(bad), None, "{bad}");
        }
    }

    // ---------------------------------------------------------------- whole logs

    /// A small audit.log: the agent event with its SYSCALL/PROCTITLE, noise, and rotations.
    fn fixture_log() -> String {
        [
            "type=DAEMON_START msg=audit(1732529000.000:9625): op=start ver=3.1.2 format=enriched kernel=5.14.0-427.el9.x86_64 auid=4294967295 pid=700 uid=0 ses=4294967295 subj=system_u:system_r:auditd_t:s0 res=success\u{1d}AUID=\"unset\" UID=\"root\"",
            // Agent-related only through its process: comm python3, path under /usr/lib64.
            "type=AVC msg=audit(1732530500.321:5000): avc:  denied  { map } for  pid=4200 comm=\"python3\" path=\"/usr/lib64/libffi.so.8.1.0\" dev=\"sda2\" ino=1001 scontext=system_u:system_r:waagent_t:s0 tcontext=system_u:object_r:lib_t:s0 tclass=file permissive=0",
            "type=SYSCALL msg=audit(1732530500.321:5000): arch=c000003e syscall=9 success=no exit=-13 a0=0 a1=1000 a2=5 a3=802 items=0 ppid=4100 pid=4200 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"python3\" exe=\"/usr/bin/python3.9\" subj=system_u:system_r:waagent_t:s0 key=(null)\u{1d}ARCH=x86_64 SYSCALL=mmap AUID=\"unset\" UID=\"root\" GID=\"root\" EUID=\"root\" SUID=\"root\" FSUID=\"root\" EGID=\"root\" SGID=\"root\" FSGID=\"root\"",
            "type=PROCTITLE msg=audit(1732530500.321:5000): proctitle=707974686F6E33002D750062696E2F57414C696E75784167656E742D322E392E312E312D7079332E382E656767002D72756E2D65787468616E646C657273",
            // Noise: httpd, and python3 on /home.
            "type=AVC msg=audit(1717250060.220:460): avc:  denied  { read } for  pid=2099 comm=\"httpd\" name=\"index.html\" dev=\"sda1\" ino=66001 scontext=system_u:system_r:httpd_t:s0 tcontext=unconfined_u:object_r:user_home_t:s0 tclass=file permissive=0",
            "type=AVC msg=audit(1732530600.000:5100): avc:  denied  { read } for  pid=4300 comm=\"python3\" name=\"notes.txt\" dev=\"sda1\" ino=7 scontext=unconfined_u:unconfined_r:unconfined_t:s0 tcontext=unconfined_u:object_r:user_home_t:s0 tclass=file permissive=1",
            "type=SYSCALL msg=audit(1732530600.000:5100): arch=c000003e syscall=257 success=yes exit=3 comm=\"python3\" exe=\"/usr/bin/python3.9\" key=(null)",
            "type=PROCTITLE msg=audit(1732530600.000:5100): proctitle=\"python3\"",
            // Same serial on another node must not be mixed in.
            "node=other type=PROCTITLE msg=audit(1732530600.000:5100): proctitle=2F7573722F7362696E2F77616167656E74202D6461656D6F6E",
            "type=CWD msg=audit(1732530600.000:5100): cwd=\"/home/alice\"",
            "garbage \u{1d} line with type= nothing",
        ]
        .join("\n")
    }

    #[test]
    fn parse_log_correlates_syscall_and_proctitle() {
        let avcs = parse_log(&fixture_log());
        assert_eq!(avcs.len(), 3);
        let agent = &avcs[0];
        assert_eq!(agent.syscall_exe.as_deref(), Some("/usr/bin/python3.9"));
        assert_eq!(
            agent.proctitle.as_deref(),
            Some("python3 -u bin/WALinuxAgent-2.9.1.1-py3.8.egg -run-exthandlers")
        );
        assert_eq!(
            agent_match_reasons(agent, &AgentMatch::default()),
            vec![MatchReason::Process, MatchReason::Comm]
        );
        let httpd = &avcs[1];
        assert_eq!(httpd.syscall_exe, None);
        assert!(!is_agent_related(httpd));
        let home = &avcs[2];
        assert_eq!(home.proctitle.as_deref(), Some("python3"));
        assert!(!is_agent_related(home), "python3 on /home is not the agent");
    }

    #[test]
    fn parse_log_mixes_journal_json() {
        let text = format!(
            "{}\n{}\n",
            r#"{"_AUDIT_TYPE_NAME":"AVC","_AUDIT_ID":"1","_SOURCE_REALTIME_TIMESTAMP":"1000","MESSAGE":"AVC avc:  denied  { read } for  pid=1 comm=\"a\" path=\"/etc/azure/vmbackup.conf\" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file permissive=0"}"#,
            AVC_HANDLE_SH_ENFORCING
        );
        let avcs = parse_log(&text);
        assert_eq!(avcs.len(), 2);
        assert_eq!(
            avcs[0].stamp,
            Some(AuditStamp {
                secs: 0,
                millis: 1,
                serial: 1
            })
        );
        assert!(is_agent_related(&avcs[0]));
    }

    // ---------------------------------------------------------------- §4.3 matching

    fn avc_with(path: Option<&str>, name: Option<&str>, comm: &str, scontext: &str) -> Avc {
        Avc {
            denied: true,
            permissive: Some(false),
            path: path.map(str::to_string),
            name: name.map(str::to_string),
            comm: Some(comm.to_string()),
            scontext: Some(scontext.to_string()),
            tclass: Some("file".to_string()),
            ..Avc::default()
        }
    }

    #[test]
    fn matching_positives() {
        let ctx = "system_u:system_r:fsadm_t:s0";
        let positives = [
            avc_with(
                Some(&format!("{SNAPSHOT_DIR}/main/handle.sh")),
                None,
                "sh",
                ctx,
            ),
            avc_with(Some("/var/lib/waagent"), None, "ls", ctx),
            avc_with(
                Some(
                    "/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log",
                ),
                None,
                "x",
                ctx,
            ),
            avc_with(Some("/var/log/waagent.log"), None, "x", ctx),
            avc_with(Some("/var/log/waagent.log.1"), None, "x", ctx),
            avc_with(Some("/etc/azure/vmbackup.conf"), None, "x", ctx),
            avc_with(Some("/etc/waagent.conf"), None, "x", ctx),
            avc_with(
                Some("/mnt/restore/WALinuxAgent-2.9.1.1/bin"),
                None,
                "x",
                ctx,
            ),
            avc_with(None, Some("safefreeze"), "bash", ctx),
            avc_with(None, Some("waagent"), "x", ctx),
            avc_with(
                None,
                Some("Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9220.0"),
                "x",
                ctx,
            ),
            avc_with(None, Some("WALinuxAgent-2.9.1.1"), "x", ctx),
        ];
        for a in &positives {
            assert!(is_agent_related(a), "{a:?}");
        }
        // Observed agent domain.
        let m = AgentMatch {
            agent_domains: vec!["waagent_t".to_string()],
            ..AgentMatch::default()
        };
        let by_domain = avc_with(
            Some("/usr/lib64/libc.so.6"),
            None,
            "python3",
            "system_u:system_r:waagent_t:s0-s0:c0.c1023",
        );
        assert!(!is_agent_related(&by_domain));
        assert_eq!(
            agent_match_reasons(&by_domain, &m),
            vec![MatchReason::Domain, MatchReason::Comm]
        );
        // Configured Lib.Dir.
        let m2 = AgentMatch {
            lib_dir: "/data/waagent/".to_string(),
            ..AgentMatch::default()
        };
        let custom = avc_with(Some("/data/waagent/x"), None, "x", ctx);
        assert!(is_agent_related_with(&custom, &m2));
        assert!(!is_agent_related(&custom));
        // Kernel AVC's own exe.
        let mut own_exe = avc_with(Some("/usr/lib64/x"), None, "x", ctx);
        own_exe.exe = Some("/usr/sbin/waagent".to_string());
        assert!(is_agent_related(&own_exe));
    }

    #[test]
    fn matching_negatives() {
        let ctx = "system_u:system_r:unconfined_service_t:s0";
        let negatives = [
            // comm alone is too broad.
            avc_with(Some("/home/alice/x"), None, "python3", ctx),
            avc_with(Some("/usr/bin/foo"), None, "safefreeze", ctx),
            avc_with(None, Some("index.html"), "waagent", ctx),
            // Lookalike paths.
            avc_with(Some("/var/lib/waagentx/foo"), None, "sh", ctx),
            avc_with(Some("/var/log/azurefoo"), None, "sh", ctx),
            avc_with(Some("/etc/azure-cli/x"), None, "sh", ctx),
            avc_with(None, Some("waagent.bak"), "sh", ctx),
            // Nothing at all.
            Avc::default(),
        ];
        for a in &negatives {
            assert!(!is_agent_related(a), "{a:?}");
        }
        // USER_AVC exe is the object manager: no match from it.
        let mut u = avc_with(None, None, "x", ctx);
        u.kind = AvcKind::UserAvc;
        u.exe = Some("/usr/sbin/waagent".to_string());
        assert!(!is_agent_related(&u));
        // A service unit that is not the agent's.
        let mut s = avc_with(
            Some("/usr/lib/systemd/system/httpd.service"),
            None,
            "x",
            ctx,
        );
        s.tclass = Some("service".to_string());
        assert!(!is_agent_related(&s));
        // Lib.Dir "/" must not make everything match.
        let root = AgentMatch {
            lib_dir: "/".to_string(),
            ..AgentMatch::default()
        };
        assert!(!is_agent_related_with(
            &avc_with(Some("/etc/passwd"), None, "x", ctx),
            &root
        ));
    }

    #[test]
    fn agent_comms() {
        for c in [
            "waagent",
            "safefreeze",
            "handle.sh",
            "python",
            "python3",
            "python3.9",
            "python3.12",
            "python2",
            "python2.7",
            "sh",
            "bash",
            "fsfreeze",
        ] {
            assert!(is_agent_comm(c), "{c}");
        }
        for c in ["python3.", "python3.x", "httpd", "zsh", "pythonista"] {
            assert!(!is_agent_comm(c), "{c}");
        }
    }

    #[test]
    fn context_type_variants() {
        assert_eq!(context_type("system_u:system_r:init_t:s0"), Some("init_t"));
        assert_eq!(
            context_type("system_u:system_r:waagent_t:s0-s0:c0.c1023"),
            Some("waagent_t")
        );
        assert_eq!(context_type("a:b:c_t"), Some("c_t"));
        assert_eq!(context_type("unconfined"), None);
        assert_eq!(context_type("a:b:"), None);
    }

    #[test]
    fn adversarial_long_lines_stay_linear() {
        // No quote is ever followed by a space: a naive "find the closing quote" rescans the
        // rest of the line for every token (quadratic). These must finish promptly.
        let head = "type=AVC msg=audit(1.1:1): avc:  denied  { read } for ";
        let dq = format!("{head}{}", "a=\"b\"c ".repeat(200_000));
        assert!(parse_record(&dq).is_some_and(|a| a.other.len() == 200_000));
        let sq = format!(
            "type=USER_AVC msg=audit(1.1:1): msg='avc:  denied  {{ x }} for {}",
            "a='b'c ".repeat(200_000)
        );
        assert!(parse_record(&sq).is_some());
        let braces = format!("{head}{}", "a={ ".repeat(200_000));
        assert!(parse_record(&braces).is_some());
        let types = "type=type=".repeat(200_000);
        assert_eq!(parse_record(&types), None);
    }

    #[test]
    fn since_filter() {
        let a = one(AVC_HANDLE_SH_ENFORCING);
        assert!(a.is_since(1_732_530_000));
        assert!(!a.is_since(1_732_530_001));
    }

    // ---------------------------------------------------------------- auditd.conf

    #[test]
    fn audit_log_path_variants() {
        assert_eq!(audit_log_path("").as_deref(), Some(DEFAULT_AUDIT_LOG));
        assert_eq!(
            audit_log_path("# log_file = /x/y\nlocal_events = yes\n").as_deref(),
            Some(DEFAULT_AUDIT_LOG)
        );
        let rhel = "#\n# This file controls the configuration of the audit daemon\n#\n\nlocal_events = yes\nwrite_logs = yes\nlog_file = /var/log/audit/audit.log\nlog_group = root\nlog_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 8\nnum_logs = 5\npriority_boost = 4\nname_format = NONE\n##name = mydomain\nmax_log_file_action = ROTATE\n";
        assert_eq!(
            audit_log_path(rhel).as_deref(),
            Some("/var/log/audit/audit.log")
        );
        assert_eq!(
            audit_log_path("log_file = /srv/audit/a.log\r\nlog_file = /data/audit/b.log\n")
                .as_deref(),
            Some("/data/audit/b.log"),
            "last wins, CR tolerated"
        );
        assert_eq!(
            audit_log_path("LOG_FILE=/data/audit/c.log # comment").as_deref(),
            Some("/data/audit/c.log")
        );
        assert_eq!(audit_log_path("write_logs = no\n"), None);
        assert_eq!(audit_log_path("log_format = NOLOG\n"), None);
        assert_eq!(audit_log_path("log_file = audit.log\n"), None);
        assert_eq!(audit_log_path("log_file = /a/x\n"), None, "dir too short");
        assert_eq!(audit_log_path("log_file =\n"), None);
        assert_eq!(audit_log_path("log_file = /var/log/audit/\n"), None);

        let s = auditd_log_settings("num_logs = 10\nmax_log_file_action = keep_logs\n");
        assert_eq!(s.num_logs, 10);
        assert!(s.keep_logs);
        assert_eq!(auditd_log_settings("").num_logs, DEFAULT_NUM_LOGS);
    }

    #[test]
    fn rotated_names_order() {
        assert_eq!(
            rotated_names("/var/log/audit/audit.log", 3),
            vec![
                "/var/log/audit/audit.log",
                "/var/log/audit/audit.log.1",
                "/var/log/audit/audit.log.2",
                "/var/log/audit/audit.log.3",
            ]
        );
        assert_eq!(rotated_names("audit.log", 0), vec!["audit.log"]);
        assert!(rotated_names("", 4).is_empty());
        assert_eq!(rotated_names("a", usize::MAX).len(), MAX_ROTATED + 1);
    }

    // ---------------------------------------------------------------- properties

    /// Fragments that steer random input into the parser's interesting states.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("type=AVC ".to_string()),
            Just("type=USER_AVC ".to_string()),
            Just("type=SYSCALL ".to_string()),
            Just("node=".to_string()),
            Just("msg=audit(".to_string()),
            Just("audit(1.2:3): ".to_string()),
            Just("):".to_string()),
            Just("avc:  denied  ".to_string()),
            Just("avc:  granted ".to_string()),
            Just("{ ".to_string()),
            Just(" }".to_string()),
            Just(" for ".to_string()),
            Just("msg='".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("=".to_string()),
            Just("path=".to_string()),
            Just("comm=".to_string()),
            Just("proctitle=".to_string()),
            Just("permissive=1".to_string()),
            Just("00".to_string()),
            Just("FF".to_string()),
            Just("\u{1d}".to_string()),
            Just("SADDR={".to_string()),
            Just(" ".to_string()),
            Just("(null)".to_string()),
            "[ -~]{0,12}",
            any::<String>(),
        ]
    }

    fn structured() -> impl Strategy<Value = String> {
        proptest::collection::vec(fragment(), 0..24).prop_map(|v| v.concat())
    }

    /// Kernel rule: quoted when clean, uppercase hex otherwise.
    fn kernel_encode(s: &str) -> String {
        if s.bytes().any(|c| c == b'"' || !(0x21..=0x7e).contains(&c)) {
            s.bytes().map(|c| format!("{c:02X}")).collect()
        } else {
            format!("\"{s}\"")
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_strings(s in any::<String>()) {
            let _ = parse_record(&s);
            let _ = parse_journal_json(&s);
            let _ = parse_log(&s);
            let _ = audit_log_path(&s);
            let _ = split_record(&s);
        }

        #[test]
        fn never_panics_on_lossy_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let s = String::from_utf8_lossy(&b);
            let _ = parse_record(&s);
            let _ = parse_journal_json(&s);
            let _ = parse_log(&s);
        }

        #[test]
        fn never_panics_on_structured(lines in proptest::collection::vec(structured(), 0..8)) {
            let text = lines.join("\n");
            for l in &lines {
                if let Some(a) = parse_record(l) {
                    let _ = is_agent_related(&a);
                    let _ = a.verdict();
                }
                let _ = parse_journal_json(l);
                let json = serde_json::json!({"_AUDIT_TYPE_NAME": "USER_AVC", "_AUDIT_ID": "7", "MESSAGE": l});
                let _ = parse_journal_json(&json.to_string());
            }
            let _ = parse_log(&text);
        }

        #[test]
        fn untrusted_values_round_trip(comm in "[^\u{0}]{1,15}", path in "/[^\u{0}]{0,60}") {
            let line = format!(
                "type=AVC msg=audit(1732530000.123:1): avc:  denied  {{ read }} for  pid=1 comm={} path={} dev=\"sda\" ino=1 scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file permissive=0",
                kernel_encode(&comm),
                kernel_encode(&path)
            );
            let a = parse_record(&line);
            prop_assert!(a.is_some());
            let a = a.unwrap_or_default();
            prop_assert_eq!(a.comm.as_deref(), Some(comm.as_str()));
            prop_assert_eq!(a.path.as_deref(), Some(path.as_str()));
            prop_assert_eq!(a.permissive, Some(false));
        }

        #[test]
        fn rotated_names_len(n in 0usize..2000) {
            prop_assert_eq!(rotated_names("audit.log", n).len(), n.min(MAX_ROTATED) + 1);
        }
    }
}

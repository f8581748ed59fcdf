//! Human renderer: a short `tune2fs -l` of the fields that matter, then the findings.
//!
//! Strings that come from disk or from mount points (labels, paths, function names) are
//! untrusted: control characters are escaped so they cannot garble the terminal.

use super::model::{
    BtrfsDetails, CheckStatus, ExFatDetails, ExtDetails, ExtErrorRecord, F2fsDetails, FatDetails,
    ScanReport, SelinuxMode, SelinuxReport, Severity, TargetReport, XfsDetails, XfsLogPosition,
};
use super::model::{FreezeReport, FreezeTestReport, MountVerdict, ThawReport};
use super::repair::{RepairOutcome, RepairReport, RepairStatusReport, RepairTarget};
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

/// Width of the label column, as in `tune2fs -l`.
const LABEL_WIDTH: usize = 26;

/// Render the scan document.
pub fn write_scan(report: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    for (i, target) in report.targets.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write_target(target, out)?;
    }
    let s = &report.summary;
    if report.targets.is_empty() {
        // Nothing was looked at: that is not OK (the exit code is 3 too).
        writeln!(
            out,
            "UNKNOWN: nothing to scan (no block filesystem is mounted, or every one is skipped by the configuration)"
        )?;
        return out.flush();
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}: {} critical, {} warning, {} unknown, {} ok",
        report.summary.worst().label(),
        s.critical,
        s.warning,
        s.unknown,
        s.ok
    )?;
    out.flush()
}

fn write_target(t: &TargetReport, out: &mut dyn Write) -> io::Result<()> {
    let mut heading = vec![t.fstype.clone().unwrap_or_else(|| "unknown".into())];
    if let Some(device) = &t.device {
        if device != &t.target {
            heading.push(format!("device {}", sanitize(device)));
        }
    }
    if let Some(mp) = &t.mountpoint {
        if mp != &t.target {
            heading.push(format!("mounted on {}", sanitize(mp)));
        }
    }
    if let Some(p) = &t.partition {
        heading.push(format!(
            "{} partition {} at offset {}",
            p.scheme, p.index, p.offset
        ));
    }
    heading.push(t.context.word().to_string());
    writeln!(
        out,
        "{} ({}): {}",
        sanitize(&t.target),
        heading.join(", "),
        t.status.label()
    )?;
    if !t.other_mountpoints.is_empty() {
        let others: Vec<String> = t.other_mountpoints.iter().map(|m| sanitize(m)).collect();
        field(out, "Also mounted on", &others.join(", "))?;
    }
    if let Some(error) = &t.error {
        field(out, "Cannot assess", &sanitize(error))?;
    }
    if let Some(state) = &t.state {
        field(out, "Filesystem state", state)?;
    }
    if let Some(nr) = t.needs_recovery {
        field(out, "Needs recovery", if nr { "yes" } else { "no" })?;
    }
    if t.ext.is_some() {
        let verdict = match &t.fsck_reason {
            Some(reason) => format!("yes: {reason}"),
            None => "no (clean)".to_string(),
        };
        field(out, "e2fsck would check", &verdict)?;
    }
    if let Some(ext) = &t.ext {
        write_ext(ext, out)?;
    }
    if let Some(xfs) = &t.xfs {
        write_xfs(xfs, out)?;
    }
    if let Some(btrfs) = &t.btrfs {
        write_btrfs(btrfs, out)?;
    }
    if let Some(fat) = &t.fat {
        write_fat(fat, out)?;
    }
    if let Some(exfat) = &t.exfat {
        write_exfat(exfat, out)?;
    }
    if let Some(f2fs) = &t.f2fs {
        write_f2fs(f2fs, out)?;
    }
    for (i, f) in t.findings.iter().enumerate() {
        let sev = match f.severity {
            Severity::Info => "info",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        };
        writeln!(out, "  {sev:<8} {}: {}", f.id, sanitize(&f.message))?;
        if let Some(line) = fix_line(&t.findings, i) {
            writeln!(out, "  {:<8}   {line}", "")?;
        }
    }
    Ok(())
}

/// The `fix:` line under finding `i`: one fix is printed once per filesystem, under the
/// last finding it fixes (naming the others), so the admin does not run it twice.
fn fix_line(findings: &[super::model::Finding], i: usize) -> Option<String> {
    let remedy = findings[i].remedy.as_deref()?;
    let sharing: Vec<usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.remedy.as_deref() == Some(remedy))
        .map(|(j, _)| j)
        .collect();
    if sharing.last() != Some(&i) {
        return None;
    }
    let others: Vec<&str> = sharing[..sharing.len() - 1]
        .iter()
        .map(|&j| findings[j].id)
        .collect();
    if others.is_empty() {
        Some(format!("fix: {}", sanitize(remedy)))
    } else {
        Some(format!(
            "fix (also for {}): {}",
            others.join(", "),
            sanitize(remedy)
        ))
    }
}

fn write_ext(e: &ExtDetails, out: &mut dyn Write) -> io::Result<()> {
    if !e.label.is_empty() {
        field(out, "Filesystem volume name", &sanitize(&e.label))?;
    }
    field(out, "Filesystem UUID", &e.uuid)?;
    let features = if e.features.is_empty() {
        "(none)".to_string()
    } else {
        e.features.join(" ")
    };
    field(out, "Filesystem features", &features)?;
    field(out, "Errors behavior", e.errors_behavior)?;
    field(
        out,
        "Block size / count",
        &format!("{} / {}", e.block_size, e.blocks_count),
    )?;
    match (e.superblock, e.checksum) {
        ("primary", "absent") => {}
        ("primary", checksum) => field(out, "Superblock checksum", checksum)?,
        (which, "bad") => field(
            out,
            "Superblock",
            &format!("{which} (the primary's checksum is bad)"),
        )?,
        (which, _) => field(out, "Superblock", which)?,
    }
    field(out, "Mount count", &e.mount_count.to_string())?;
    field(out, "Maximum mount count", &e.max_mount_count.to_string())?;
    field(out, "Last mount time", &time_or_na(e.last_mount_time))?;
    field(out, "Last checked", &time_or_na(e.last_checked))?;
    let interval = match e.check_interval {
        0 => "0 (<none>)".to_string(),
        s => format!("{s} ({} days)", s / 86_400),
    };
    field(out, "Check interval", &interval)?;
    if !e.last_mounted.is_empty() {
        field(out, "Last mounted on", &sanitize(&e.last_mounted))?;
    }
    if let Some(orphan) = e.first_orphan_inode {
        field(out, "First orphan inode", &orphan.to_string())?;
    }
    if e.error_count != 0 {
        field(out, "FS Error count", &e.error_count.to_string())?;
    }
    if let Some(r) = &e.first_error {
        field(out, "First error", &error_record(r))?;
    }
    if let Some(r) = &e.last_error {
        field(out, "Last error", &error_record(r))?;
    }
    if let Some(j) = &e.journal {
        let mut text = format!("start {}, sequence 0x{:08x}", j.start, j.sequence);
        if j.errno != 0 {
            text.push_str(&format!(", errno {}", j.errno));
        }
        field(out, "Journal", &text)?;
    }
    if let Some(live) = &e.live_errors {
        let mut text = format!("{} errors since mount", live.errors_count);
        if live.errors_count > 0 {
            text.push_str(&format!(
                ", last {} at {}:{}",
                time_or_na(live.last_error_time),
                sanitize(&live.last_error_func),
                live.last_error_line
            ));
        }
        field(out, "Live error counters", &text)?;
    }
    Ok(())
}

fn write_xfs(x: &XfsDetails, out: &mut dyn Write) -> io::Result<()> {
    if !x.label.is_empty() {
        field(out, "Filesystem label", &sanitize(&x.label))?;
    }
    field(out, "Filesystem UUID", &x.uuid)?;
    field(out, "Version / CRC", &format!("v{} / {}", x.version, x.crc))?;
    field(out, "Features", &x.features.join(" "))?;
    field(
        out,
        "Block size / count",
        &format!("{} / {}", x.block_size, x.data_blocks),
    )?;
    let position = |p: &Option<XfsLogPosition>| match p {
        Some(p) => format!("block {} cycle {}", p.block, p.cycle),
        None => "not assessed".to_string(),
    };
    if x.log_external {
        field(out, "Log", "external (not assessed)")?;
    } else {
        let state = match x.log_clean {
            Some(true) => "clean",
            Some(false) => "dirty",
            None => "not assessed",
        };
        field(
            out,
            "Log",
            &format!("{state}, {} blocks at {}", x.log_blocks, x.log_start),
        )?;
        field(out, "Log head", &position(&x.log_head))?;
        field(out, "Log tail", &position(&x.log_tail))?;
    }
    Ok(())
}

fn write_btrfs(b: &BtrfsDetails, out: &mut dyn Write) -> io::Result<()> {
    if !b.label.is_empty() {
        field(out, "Label", &sanitize(&b.label))?;
    }
    field(out, "Filesystem UUID", &b.fsid)?;
    field(
        out,
        "Device",
        &format!("devid {} of {}", b.devid, b.num_devices),
    )?;
    field(out, "Generation", &b.generation.to_string())?;
    field(
        out,
        "Superblock",
        &format!(
            "{} at {} (checksum {}, {})",
            b.superblock, b.superblock_offset, b.checksum, b.csum_type
        ),
    )?;
    if !b.flag_names.is_empty() {
        field(out, "Flags", &b.flag_names.join(" "))?;
    }
    let log = if b.log_root == 0 {
        "none".to_string()
    } else {
        format!("pending at {} (level {})", b.log_root, b.log_root_level)
    };
    field(out, "Log tree", &log)?;
    if let Some(devices) = &b.device_errors {
        for d in devices {
            field(
                out,
                &format!("Device {} errors", d.devid),
                &format!(
                    "write {} read {} flush {} corruption {} generation {}",
                    d.write_errs, d.read_errs, d.flush_errs, d.corruption_errs, d.generation_errs
                ),
            )?;
        }
    }
    Ok(())
}

fn write_fat(f: &FatDetails, out: &mut dyn Write) -> io::Result<()> {
    if let Some(label) = &f.label {
        field(out, "Label", &sanitize(label))?;
    }
    if let Some(id) = &f.volume_id {
        field(out, "Volume ID", id)?;
    }
    field(
        out,
        "FAT type",
        &format!("FAT{}, {} clusters", f.fat_bits, f.clusters),
    )?;
    field(
        out,
        "Boot sector dirty bit",
        if f.boot_dirty { "set" } else { "clear" },
    )?;
    Ok(())
}

fn write_exfat(e: &ExFatDetails, out: &mut dyn Write) -> io::Result<()> {
    field(out, "Volume serial", &e.volume_serial)?;
    field(out, "Revision", &e.revision)?;
    field(out, "Volume flags", &format!("0x{:04x}", e.volume_flags))?;
    field(out, "Boot checksum", e.boot_checksum)?;
    Ok(())
}

fn write_f2fs(f: &F2fsDetails, out: &mut dyn Write) -> io::Result<()> {
    if !f.label.is_empty() {
        field(out, "Label", &sanitize(&f.label))?;
    }
    field(out, "UUID", &f.uuid)?;
    field(
        out,
        "Superblock",
        &format!("{}, checksum {}", f.superblock, f.checksum),
    )?;
    match (f.checkpoint_pack, f.checkpoint_version, f.checkpoint_flags) {
        (Some(pack), Some(version), Some(flags)) => {
            field(
                out,
                "Checkpoint",
                &format!("pack {pack}, version {version:#x}"),
            )?;
            field(
                out,
                "Checkpoint state",
                &format!("{flags:x} : {}", f.checkpoint_state.join(" ")),
            )?;
        }
        _ => field(out, "Checkpoint", "no valid pack")?,
    }
    if !f.stop_reasons.is_empty() {
        let reasons: Vec<String> = f
            .stop_reasons
            .iter()
            .map(|r| format!("{}({})", sanitize(&r.reason), r.count))
            .collect();
        field(out, "Stop reasons", &reasons.join(" "))?;
    }
    if !f.errors.is_empty() {
        field(out, "Errors", &f.errors.join(" "))?;
    }
    Ok(())
}

/// Render the `snapguard selinux` document: the verdict line, the checks to act on (worst
/// first, with remedy and evidence), then every check in one line each.
pub fn write_selinux(report: &SelinuxReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "snapguard selinux: {}", sanitize(&report.verdict))?;
    let mode = match report.mode {
        SelinuxMode::Absent => "absent",
        SelinuxMode::Disabled => "disabled",
        SelinuxMode::Permissive => "permissive",
        SelinuxMode::Enforcing => "enforcing",
        SelinuxMode::Container => "container (host decides)",
        SelinuxMode::Unknown => "unknown (not readable)",
    };
    let mut context = format!("mode {mode}");
    if let Some(p) = &report.policy_type {
        context.push_str(&format!(", policy {}", sanitize(p)));
    }
    if report.root != "/" {
        context.push_str(&format!(", root {}", sanitize(&report.root)));
    }
    if report.offline {
        context.push_str(" (offline)");
    }
    writeln!(out, "  ({context})")?;
    let mut act: Vec<_> = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, CheckStatus::Fail | CheckStatus::Warn))
        .collect();
    act.sort_by_key(|c| std::cmp::Reverse(c.status));
    if !act.is_empty() {
        writeln!(out)?;
        writeln!(out, "To fix:")?;
        for c in act {
            writeln!(
                out,
                "  {} {:<3} {}: {}",
                c.status.label(),
                c.id,
                c.title,
                sanitize(&c.message)
            )?;
            if let Some(remedy) = &c.remedy {
                writeln!(out, "           fix: {}", sanitize(remedy))?;
            }
            for d in &c.details {
                writeln!(out, "           - {}", sanitize(d))?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "Checks:")?;
    let width = report
        .checks
        .iter()
        .map(|c| c.title.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        writeln!(
            out,
            "  {:<3} {} {:<width$}  {}",
            c.id,
            c.status.label(),
            c.title,
            sanitize(&c.message)
        )?;
    }
    if !report.unreadable.is_empty() {
        writeln!(
            out,
            "  not read (needs root, skipped, not passed): {}",
            report.unreadable.join(", ")
        )?;
    }
    let s = &report.summary;
    writeln!(out)?;
    writeln!(
        out,
        "{}: {} fail, {} warn, {} pass, {} skip",
        report.status.label(),
        s.fail,
        s.warn,
        s.pass,
        s.skip
    )?;
    out.flush()
}

fn field(out: &mut dyn Write, label: &str, value: &str) -> io::Result<()> {
    let label = format!("{label}:");
    writeln!(out, "  {label:<LABEL_WIDTH$}{value}")
}

fn error_record(r: &ExtErrorRecord) -> String {
    let mut text = format!(
        "{} {}:{}",
        time_or_na(r.time),
        sanitize(&r.function),
        r.line
    );
    if r.inode != 0 {
        text.push_str(&format!(" inode {}", r.inode));
    }
    if r.block != 0 {
        text.push_str(&format!(" block {}", r.block));
    }
    if !r.errcode.is_empty() {
        text.push_str(&format!(" {}", r.errcode));
    }
    text
}

/// Format a Unix time as UTC, or `n/a` for zero, as dumpe2fs does.
pub fn time_or_na(secs: u64) -> String {
    if secs == 0 {
        return "n/a".to_string();
    }
    utc_seconds(secs).unwrap_or_else(|| format!("@{secs}"))
}

/// Last second RFC 3339 can write (9999-12-31T23:59:59Z): humantime's formatter fails past
/// it, and `to_string` then panics. On-disk and audit timestamps can be anything.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// A Unix time as `YYYY-MM-DD HH:MM:SSZ` (UTC); `None` past year 9999.
pub fn utc_seconds(secs: u64) -> Option<String> {
    if secs > MAX_RFC3339_SECS {
        return None;
    }
    let t = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    Some(
        humantime::format_rfc3339_seconds(t)
            .to_string()
            .replace('T', " "),
    )
}

/// Escape control characters (newlines in mount points, escape sequences in labels).
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

// ---- freeze-test, freeze, thaw (issue #4) ------------------------------------------------------

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.0}"),
        None => "-".to_string(),
    }
}

fn write_mount_rows(mounts: &[MountVerdict], out: &mut dyn Write) -> io::Result<()> {
    let width = mounts
        .iter()
        .map(|m| sanitize(&m.mountpoint).chars().count())
        .max()
        .unwrap_or(10)
        .clamp(10, 40);
    // Durations carry their unit in the header: a bare number is ambiguous in a ticket.
    writeln!(
        out,
        "{:<width$}  {:<8}  {:<14}  {:>9}  {:>9}  {:>9}  {:>9}",
        "MOUNTPOINT", "FSTYPE", "VERDICT", "SYNC ms", "FREEZE ms", "FROZEN ms", "THAW ms"
    )?;
    for m in mounts {
        writeln!(
            out,
            "{:<width$}  {:<8}  {:<14}  {:>9}  {:>9}  {:>9}  {:>9}",
            sanitize(&m.mountpoint),
            sanitize(&m.fstype),
            m.verdict.label(),
            ms(m.sync_ms),
            ms(m.freeze_ms),
            ms(m.frozen_ms),
            ms(m.thaw_ms)
        )?;
        let mut reason = sanitize(&m.reason);
        if let Some(device) = &m.device {
            reason = format!("{reason} [{}]", sanitize(device));
        }
        writeln!(out, "  {reason}")?;
    }
    Ok(())
}

/// Render the `freeze-test` document: one row per mount point with its timings (ms), the
/// reason under it, then the totals.
pub fn write_freeze_test(report: &FreezeTestReport, out: &mut dyn Write) -> io::Result<()> {
    write_mount_rows(&report.mounts, out)?;
    for m in &report.messages {
        writeln!(out, "note: {}", sanitize(m))?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "\n{}: {} freezable, {} warning, {} failed{}",
        s.worst().label(),
        s.ok,
        s.warning,
        s.critical,
        if report.probe_only {
            " (static probe only: nothing was frozen)"
        } else {
            ""
        }
    )?;
    out.flush()
}

/// Render the `freeze` document: mounts, hooks, CMD, the frozen window and the outcome.
pub fn write_freeze(report: &FreezeReport, out: &mut dyn Write) -> io::Result<()> {
    write_mount_rows(&report.mounts, out)?;
    if !report.hooks.is_empty() {
        writeln!(out)?;
        for h in &report.hooks {
            let detail = h.detail.as_deref().map(sanitize).unwrap_or_default();
            writeln!(
                out,
                "hook {:<6} {:<8} {:>7} ms  {} {}",
                h.phase,
                h.result,
                ms(Some(h.duration_ms)),
                sanitize(&h.path),
                detail
            )?;
        }
    }
    if let Some(cmd) = &report.cmd {
        let argv: Vec<String> = cmd.argv.iter().map(|a| sanitize(a)).collect();
        let status = match (&cmd.error, cmd.exit_code, cmd.signal) {
            (Some(e), _, _) => format!("not started: {}", sanitize(e)),
            (None, Some(code), _) => format!("exit {code}"),
            (None, None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "unknown".to_string(),
        };
        writeln!(
            out,
            "\ncommand: {} -> {status} after {} ms{}",
            argv.join(" "),
            ms(Some(cmd.duration_ms)),
            if cmd.terminated {
                " (terminated by snapguard)"
            } else {
                ""
            }
        )?;
    }
    for m in &report.messages {
        writeln!(out, "note: {}", sanitize(m))?;
    }
    let outcome = serde_json::to_value(report.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    writeln!(
        out,
        "\n{outcome}: frozen window {} ms (deadline {} ms), exit {}",
        ms(report.window_ms),
        report.timeout_ms,
        report.exit_code
    )?;
    if let Some(reason) = &report.reason {
        writeln!(out, "  {}", sanitize(reason))?;
    }
    if !report.still_frozen.is_empty() {
        let list: Vec<String> = report.still_frozen.iter().map(|m| sanitize(m)).collect();
        writeln!(out, "  MAY STILL BE FROZEN: {}", list.join(", "))?;
    }
    out.flush()
}

/// Render the `thaw` document.
pub fn write_thaw(report: &ThawReport, out: &mut dyn Write) -> io::Result<()> {
    for m in &report.mounts {
        writeln!(
            out,
            "{}: {}: {}",
            sanitize(&m.mountpoint),
            m.result.label(),
            sanitize(&m.reason)
        )?;
    }
    for m in &report.messages {
        writeln!(out, "note: {}", sanitize(m))?;
    }
    let s = &report.summary;
    if report.mounts.is_empty() {
        writeln!(out, "nothing to thaw: no record of a snapguard freeze")?;
    }
    writeln!(
        out,
        "{}: {} ok, {} skipped, {} failed",
        s.worst().label(),
        s.ok,
        s.warning,
        s.critical
    )?;
    out.flush()
}
// ---- end freeze-test, freeze, thaw ------------------------------------------------------------

// ---- repair --------------------------------------------------------------------------------

/// The plan of a repair, printed before the confirmation prompt (and as the `--dry-run` report):
/// per filesystem, what is in the way and every step with its command.
pub fn write_repair_plan(targets: &[RepairTarget], out: &mut dyn Write) -> io::Result<()> {
    for t in targets {
        write_repair_head(t, out)?;
        for s in t.steps.iter().filter(|s| s.result == "planned") {
            match &s.command {
                Some(c) => writeln!(
                    out,
                    "  {:<11} {}  $ {}",
                    s.step,
                    sanitize(&s.detail),
                    sanitize(c)
                )?,
                None => writeln!(out, "  {:<11} {}", s.step, sanitize(&s.detail))?,
            }
        }
    }
    out.flush()
}

fn write_repair_head(t: &RepairTarget, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{} ({}, {}), mounted on {}",
        sanitize(&t.target),
        sanitize(t.device.as_deref().unwrap_or("?")),
        sanitize(t.fstype.as_deref().unwrap_or("?")),
        if t.mountpoints.is_empty() {
            "nothing".to_string()
        } else {
            sanitize(&t.mountpoints.join(", "))
        }
    )?;
    if let Some(state) = &t.state_before {
        writeln!(out, "  scan:       {}", sanitize(state))?;
    }
    for b in &t.blockers {
        writeln!(out, "  in the way: {}", blocker_text(b))?;
    }
    for b in &t.trusted {
        writeln!(
            out,
            "  not read:   {} (passed with --trust-fence: the unmount and the O_EXCL fence prove \
             the device free)",
            blocker_text(b)
        )?;
    }
    if let Some(b) = &t.boot_check {
        writeln!(
            out,
            "  boot-time check ({}): {}",
            b.mechanism,
            sanitize(&b.why)
        )?;
        for c in &b.commands {
            writeln!(
                out,
                "    {}{}",
                if b.manual { "by hand: " } else { "$ " },
                sanitize(c)
            )?;
        }
        for c in &b.undo {
            writeln!(out, "    undo: {}", sanitize(c))?;
        }
    }
    Ok(())
}

/// `KIND pid PID COMMAND [UNIT]: HOW`, sanitized.
fn blocker_text(b: &crate::report::Blocker) -> String {
    let who = match (b.pid, &b.command) {
        (Some(pid), Some(c)) => format!("pid {pid} {c}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => String::new(),
    };
    let unit = b
        .unit
        .as_deref()
        .map(|u| format!(" [{u}]"))
        .unwrap_or_default();
    format!(
        "{} {}{}: {}",
        b.kind,
        sanitize(&who),
        sanitize(&unit),
        sanitize(&b.how)
    )
}

/// Write the `repair` report.
pub fn write_repair(report: &RepairReport, out: &mut dyn Write) -> io::Result<()> {
    if report.dry_run {
        writeln!(out, "dry run: nothing was changed")?;
        write_repair_plan(&report.targets, out)?;
    }
    for t in &report.targets {
        if !report.dry_run {
            write_repair_head(t, out)?;
            for s in &t.steps {
                let status = s
                    .exit_status
                    .map(|c| format!(" (exit {c})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  {:<11} {:<8} {}{}{}",
                    s.step,
                    s.result,
                    sanitize(&s.detail),
                    status,
                    if s.duration_ms > 0 {
                        format!(" [{} ms]", s.duration_ms)
                    } else {
                        String::new()
                    }
                )?;
            }
        }
        if let Some(b) = &t.backup {
            writeln!(
                out,
                "  metadata backup: {} ({} bytes)",
                sanitize(&b.path),
                b.bytes
            )?;
            if let Some(u) = &b.undo_file {
                writeln!(out, "  undo file: {}", sanitize(u))?;
            }
        }
        for d in &t.differences {
            writeln!(out, "  mount differs: {}", sanitize(d))?;
        }
        if let Some(v) = &t.freeze_test {
            writeln!(out, "  freeze-test: {v}")?;
        }
        if let Some(after) = &t.state_after {
            writeln!(out, "  scan after: {}", sanitize(after))?;
        }
        if let Some(r) = &t.record {
            writeln!(out, "  state record: {}", sanitize(r))?;
        }
        writeln!(
            out,
            "  => {}: {}",
            outcome_label(t.outcome),
            sanitize(&t.message)
        )?;
    }
    for m in &report.messages {
        writeln!(out, "note: {}", sanitize(m))?;
    }
    writeln!(out, "exit status {}", report.exit_code)?;
    out.flush()
}

fn outcome_label(o: RepairOutcome) -> &'static str {
    match o {
        RepairOutcome::NothingToDo => "NOTHING TO DO",
        RepairOutcome::Repaired => "REPAIRED",
        RepairOutcome::Planned => "PLANNED",
        RepairOutcome::BootCheckScheduled => "BOOT-TIME CHECK",
        RepairOutcome::ErrorsLeft => "ERRORS LEFT",
        RepairOutcome::Held => "HELD UNMOUNTED",
        RepairOutcome::Refused => "REFUSED",
        RepairOutcome::Failed => "FAILED",
        RepairOutcome::Declined => "DECLINED",
    }
}
/// Write `repair --status`.
pub fn write_repair_status(report: &RepairStatusReport, out: &mut dyn Write) -> io::Result<()> {
    if report.records.is_empty() {
        writeln!(
            out,
            "no repair records: no repair is running, held or interrupted"
        )?;
    }
    for r in &report.records {
        writeln!(
            out,
            "{} ({}): {} (pid {}, mounted on {})",
            sanitize(&r.device),
            sanitize(&r.fstype),
            r.phase,
            r.pid,
            sanitize(&r.mountpoints.join(", "))
        )?;
        if let Some(step) = &r.last_step {
            writeln!(out, "  last step: {}", sanitize(step))?;
        }
        if let Some(hint) = &r.hint {
            writeln!(out, "  {}", sanitize(hint))?;
        }
        writeln!(out, "  record: {}", sanitize(&r.record))?;
    }
    out.flush()
}
// ---- end repair ----------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (scripts/fuzz.sh ext): an ext superblock time past year 9999
    /// panicked in `to_string` ("a Display implementation returned an error").
    #[test]
    fn times_past_year_9999_do_not_panic() {
        assert_eq!(time_or_na(253_402_300_799), "9999-12-31 23:59:59Z");
        assert_eq!(time_or_na(253_402_300_800), "@253402300800");
        assert_eq!(time_or_na(u64::MAX), format!("@{}", u64::MAX));
        assert_eq!(utc_seconds(1 << 40), None);
        assert_eq!(utc_seconds(0).as_deref(), Some("1970-01-01 00:00:00Z"));
    }

    #[test]
    fn one_fix_is_printed_once_per_filesystem() {
        use crate::report::model::{Context, Finding};
        let mut t = TargetReport::new("/dev/sdb1", Context::Offline);
        for id in ["ext.not-clean", "ext.errors", "ext.orphans"] {
            t.findings
                .push(Finding::new(id, Severity::Warning, "m").with_remedy("e2fsck -f /dev/sdb1"));
        }
        t.findings
            .push(Finding::new("ext.other", Severity::Warning, "m").with_remedy("tune2fs -c 0"));
        t.finish();
        let mut out = Vec::new();
        write_scan(&ScanReport::new(vec![t]), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("e2fsck -f /dev/sdb1").count(), 1, "{text}");
        assert!(
            text.contains("fix (also for ext.not-clean, ext.errors): e2fsck -f /dev/sdb1"),
            "{text}"
        );
        assert!(text.contains("fix: tune2fs -c 0"), "{text}");
    }

    #[test]
    fn nothing_to_scan_is_not_ok() {
        let mut out = Vec::new();
        write_scan(&ScanReport::new(Vec::new()), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("UNKNOWN: nothing to scan"), "{text}");
    }

    #[test]
    fn sanitize_escapes_newlines_and_escape_sequences() {
        assert_eq!(sanitize("/mnt/a b\nc"), "/mnt/a b\\nc");
        assert_eq!(sanitize("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(sanitize("plain"), "plain");
    }

    #[test]
    fn times_are_utc_and_zero_is_na() {
        assert_eq!(time_or_na(0), "n/a");
        assert_eq!(time_or_na(1_704_110_400), "2024-01-01 12:00:00Z");
    }
}

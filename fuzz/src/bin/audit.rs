//! Fuzz target `audit`: arbitrary bytes as an audit log, a journald JSON line, auditd.conf.

use snapguard::selinux::audit;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let avcs = audit::parse_log(&text);
        for avc in &avcs {
            let _ = (avc.verdict(), avc.scontext_type(), avc.tcontext_type());
            let _ = audit::is_agent_related(avc);
        }
        for line in text.lines() {
            let _ = audit::parse_record(line);
            let _ = audit::parse_journal_json(line);
            let _ = audit::split_record(line);
        }
        let settings = audit::auditd_log_settings(&text);
        if let Some(file) = &settings.log_file {
            let _ = audit::rotated_names(file, 9);
        }
    });
}

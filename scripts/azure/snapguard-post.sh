#!/bin/sh
# snapguard post-script for Azure VM backup (VMSnapshot extension, ScriptRunner plugin).
#
# Azure runs it as `sh /usr/local/share/snapguard/azure/snapguard-post.sh PARAMS...` after the
# snapshot (and the thaw), also when the pre-script failed, and may run it again: it only
# logs one line (that the snapshot finished, and the pre-script's result from its report) to
# the journal (logger -t snapguard-azure) and stdout, and always exits 0. It never thaws,
# unmounts or changes anything, and never fails the backup for snapguard's sake. PARAMS are
# ignored.
#
# Environment: SNAPGUARD_AZURE_LOGDIR, where the pre-script's report is (default
# /var/log/snapguard).
#
# POSIX sh: Azure runs it with sh, whatever its first line and mode.

PATH=${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

report=${SNAPGUARD_AZURE_LOGDIR:-/var/log/snapguard}/azure-pre.json
if [ -r "$report" ]; then
    # The first "decision" and "exit_code" are the top-level ones (snapguard's report or the
    # pre-script's own one-line error report).
    decision=$(sed -n 's/.*"decision": *"\([a-z-]*\)".*/\1/p' "$report" 2>/dev/null | head -n 1)
    code=$(sed -n 's/.*"exit_code": *\([0-9]*\).*/\1/p' "$report" 2>/dev/null | head -n 1)
    pre="pre-script report $report: ${decision:-unreadable}${code:+, exit $code}"
else
    pre="no pre-script report at $report"
fi
msg="snapshot finished; $pre"
# To the journal when logger is here, never waiting more than 3 s for it.
if command -v logger >/dev/null 2>&1; then
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 1 3 logger -t snapguard-azure -p user.info -- "post-script: $msg" \
            </dev/null >/dev/null 2>&1 || :
    else
        logger -t snapguard-azure -p user.info -- "post-script: $msg" </dev/null >/dev/null 2>&1 &
    fi
fi
# One line whatever the report path holds.
printf 'snapguard-azure: %s\n' "$(printf '%s' "$msg" | tr '\000-\037' '[ *]')" | cut -c1-200
exit 0

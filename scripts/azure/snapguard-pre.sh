#!/bin/sh
# snapguard pre-script for Azure VM backup (VMSnapshot extension, ScriptRunner plugin).
#
# Azure runs it as `sh /usr/local/share/snapguard/azure/snapguard-pre.sh PARAMS...` (the
# preScriptParams of /etc/azure/VMSnapshotScriptPluginConfig.json) before the freeze and the
# snapshot. It runs `snapguard preflight --profile azure --json PARAMS...` (read-only: nothing
# is frozen, unmounted or repaired), keeps the JSON report, logs one line and exits with what
# Azure must see. PARAMS are snapguard's own options, e.g. --config FILE, --probe HOST:PORT
# (--root DIR for tests).
#
# Exit status (Azure: 0 and 2 go on, anything else fails the pre-script, and the backup falls
# back to a file-system-consistent one only when continueBackupOnFailure is true):
#   0    healthy: nothing blocks the backup
#   2    go, with warnings that do not block
#   1    the backup would not be consistent (something blocks it), or snapguard cannot tell
#   3    snapguard could not run: usage or configuration error, crash, unexpected status
#   124  snapguard did not finish within SNAPGUARD_AZURE_TIMEOUT seconds (it was killed)
#   127  no snapguard binary found
#
# Output: one short line on stdout (Azure only polls the script's pipes, so they must stay
# small); the same line to the journal (logger -t snapguard-azure); the JSON report, written
# atomically, to $SNAPGUARD_AZURE_LOGDIR/azure-pre.json (default /var/log/snapguard, made
# mode 0700) with snapguard's stderr next to it in azure-pre.stderr. When snapguard gives no
# report, azure-pre.json says why ("decision": "error"). A report directory that is a symlink
# or not root's own gets no report (root would write through it). Killed with TERM, INT or
# HUP, the script stops snapguard and removes its temporary report; a later run removes those
# a KILL left.
#
# Environment:
#   SNAPGUARD               the snapguard binary (default: snapguard on PATH, else
#                           /usr/local/bin/snapguard)
#   SNAPGUARD_AZURE_LOGDIR  where the report goes (default /var/log/snapguard)
#   SNAPGUARD_AZURE_TIMEOUT seconds snapguard may run (default 25, and at most 5 s less than
#                           the timeoutInSeconds of SNAPGUARD_AZURE_CONFIG, so that snapguard
#                           is gone before Azure gives up on the script and goes on with the
#                           snapshot; Azure never kills a late script, this does)
#   SNAPGUARD_AZURE_CONFIG  the extension's configuration (default
#                           /etc/azure/VMSnapshotScriptPluginConfig.json), read for that only
#
# POSIX sh: Azure runs it with sh, whatever its first line and mode (mode 0700, owned by root:
# the extension refuses anything else).

umask 077
PATH=${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

logdir=${SNAPGUARD_AZURE_LOGDIR:-/var/log/snapguard}
limit=${SNAPGUARD_AZURE_TIMEOUT:-25}
report=$logdir/azure-pre.json

# journal PRIORITY MESSAGE: one line to the journal when logger is here, never waiting more
# than 3 s for it (a stuck journal must not hold the backup: Azure never kills a late script).
journal() {
    command -v logger >/dev/null 2>&1 || return 0
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 1 3 logger -t snapguard-azure -p "user.$1" -- "$2" </dev/null >/dev/null 2>&1 || :
    else
        logger -t snapguard-azure -p "user.$1" -- "$2" </dev/null >/dev/null 2>&1 &
    fi
}

# note PRIORITY CODE MESSAGE: the line to the journal and, on one line cut to 240 characters,
# to stdout:
# "snapguard-azure: exit CODE (report FILE): MESSAGE".
note() {
    line="exit $2 ($saved): $3"
    journal "$1" "pre-script $line"
    # One line whatever the text holds (a report path with a newline, a message with a tab).
    printf 'snapguard-azure: %s\n' "$(printf '%s' "$line" | tr '\000-\037' '[ *]')" | cut -c1-240
}

# json_string TEXT: TEXT as a JSON string (quotes, backslashes, no control characters).
json_string() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# error_report CODE MESSAGE: a small report in place of snapguard's, atomically.
error_report() {
    [ -n "$tmp" ] || return 0
    printf '{"command":"snapguard-azure-pre","decision":"error","exit_code":%s,"error":%s}\n' \
        "$1" "$(json_string "$2")" >"$tmp" && mv -f -- "$tmp" "$report"
}

# first_entry KEY: the first string of the report's top-level list KEY (`"KEY": [` then one
# entry per line, as snapguard writes it), unquoted.
first_entry() {
    sed -n "/^  \"$1\": \\[\$/{n;s/^    \"\\(.*\\)\",\\{0,1\\}\$/\\1/p;q;}" "$tmp" 2>/dev/null
}

# The report directory must be root's own: root writes through it, so a symlink or a directory
# someone else owns (who could plant a symlink named azure-pre.stderr) gets no report.
tmp=
tmpname=
errname=
if ! mkdir -p -- "$logdir" 2>/dev/null; then
    saved="no report: cannot create $logdir"
elif [ -L "$logdir" ] || [ ! -d "$logdir" ] || [ ! -O "$logdir" ]; then
    saved="no report: $logdir is a symlink or not owned by $(id -un 2>/dev/null || id -u)"
elif ! chmod 0700 -- "$logdir" 2>/dev/null; then
    saved="no report: cannot make $logdir private"
else
    tmpname=$logdir/.azure-pre.json.$$
    tmp=$tmpname
    # Temporary files of runs that were killed (their process is gone).
    for stale in "$logdir"/.azure-pre.json.* "$logdir"/.azure-pre.stderr.*; do
        [ -f "$stale" ] || continue
        kill -0 "${stale##*.}" 2>/dev/null || rm -f -- "$stale"
    done
    rm -f -- "$tmp"
    # snapguard's stderr: this run's own file until it ends (a run beside it, such as an Azure
    # retry while this one is still going, does not write into it).
    errname=$logdir/.azure-pre.stderr.$$
    errfile=$errname
    out=$tmp
    saved="report $report"
fi
if [ -z "$tmp" ]; then
    errfile=/dev/null
    out=/dev/null
fi

bin=${SNAPGUARD:-}
if [ -z "$bin" ]; then
    bin=$(command -v snapguard 2>/dev/null) || bin=
    case $bin in /*) ;; *) bin=/usr/local/bin/snapguard ;; esac
fi
if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
    error_report 127 "no snapguard binary at $bin"
    note err 127 "FAILED: no snapguard binary at $bin (run scripts/install.sh again: it puts the binary where this script looks)"
    exit 127
fi

case $limit in
    '' | *[!0-9]* | 0) limit=25 ;;
esac
if [ -z "${SNAPGUARD_AZURE_TIMEOUT:-}" ]; then
    # The default stays below what Azure waits (timeoutInSeconds, 30 in the sample).
    azure=$(sed -n 's/.*"timeoutInSeconds"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' \
        "${SNAPGUARD_AZURE_CONFIG:-/etc/azure/VMSnapshotScriptPluginConfig.json}" 2>/dev/null |
        head -n 1)
    case $azure in
        '' | *[!0-9]*) ;;
        *)
            if [ "${#azure}" -le 6 ] && [ "$azure" -le 6 ]; then
                limit=1
            elif [ "${#azure}" -le 6 ] && [ "$((azure - 5))" -lt "$limit" ]; then
                limit=$((azure - 5))
            fi
            ;;
    esac
fi
# Killed (TERM, INT, HUP): stop snapguard too and leave no temporary file. snapguard runs in
# the background so that the trap runs at once, not when snapguard ends.
child=
# shellcheck disable=SC2317 # run by the traps below
stop() {
    trap '' TERM INT HUP
    [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
    [ -z "$tmpname" ] || rm -f -- "$tmpname" "$errname"
    exit "$1"
}
trap 'stop 143' TERM
trap 'stop 130' INT
trap 'stop 129' HUP
if command -v timeout >/dev/null 2>&1; then
    # TERM after $limit s, KILL 2 s later (timeout then exits 124, or 137 after the KILL; a
    # 137 before the limit is a kill by someone else, such as the OOM killer). A TERM to
    # timeout goes on to snapguard.
    start=$(date +%s)
    timeout -k 2 "$limit" "$bin" preflight --profile azure --json "$@" </dev/null >"$out" 2>"$errfile" &
    child=$!
    wait "$child" 2>/dev/null
    rc=$?
    if [ "$rc" -eq 137 ] && [ $(($(date +%s) - start)) -ge "$limit" ]; then
        rc=124
    fi
else
    "$bin" preflight --profile azure --json "$@" </dev/null >"$out" 2>"$errfile" &
    child=$!
    wait "$child" 2>/dev/null
    rc=$?
fi
child=
first=$(head -n 1 "$errfile" 2>/dev/null)
[ -z "$errname" ] || mv -f -- "$errname" "$logdir/azure-pre.stderr"

case $rc in
    0 | 1 | 2)
        if [ -n "$tmp" ]; then
            if [ -s "$tmp" ]; then
                mv -f -- "$tmp" "$report"
                tmp=$report
            else
                error_report 3 "snapguard exited $rc without a report"
                note err 3 "FAILED: snapguard exited $rc without a report"
                exit 3
            fi
        fi
        ;;
esac

case $rc in
    0)
        note info 0 "healthy: nothing blocks the backup"
        exit 0
        ;;
    2)
        note warning 2 "go, with warnings that do not block"
        exit 2
        ;;
    1)
        why=$(first_entry blocked_by)
        if [ -n "$why" ]; then
            why="BLOCKED: $why"
        else
            why=$(first_entry cannot_tell)
            why="CANNOT TELL${why:+: $why}"
        fi
        note err 1 "$why"
        exit 1
        ;;
    124)
        error_report 124 "snapguard did not finish within $limit s and was killed"
        note err 124 "FAILED: snapguard did not finish within $limit s (killed)"
        exit 124
        ;;
    *)
        error_report 3 "snapguard exited $rc${first:+: $first}"
        note err 3 "FAILED: snapguard exited $rc${first:+: $first}"
        exit 3
        ;;
esac

#!/usr/bin/env bash
# `cargo test --lib` is pure: the unit tests need no tool, no root, no loop device and no
# corpus. This runs the lib test binary the way an unprivileged developer would, and proves it:
#
#   scripts/lib-pure.sh [TEST-FILTER...]
#
# * as nobody (uid/gid 65534, via setpriv) when run as root and nobody can read the
#   repository (two unit tests read README.md and src/scan/ to keep the docs in step);
#   otherwise as the calling user;
# * with an empty environment and PATH=/nonexistent, HOME and TMPDIR in a fresh directory;
# * under `strace -f -e trace=execve` when strace is installed: every program a unit test
#   executes (or tries to) must be on the allowlist below. The only ones are the POSIX
#   shell and coreutils the tests of the process-spawning code itself run (sys::spawn, shell
#   quoting, repair::checker's runner, freeze hooks), by absolute path or from the checker's
#   fixed search path. Filesystem tools (mkfs.*, debugfs, sfdisk, ...) belong in tests/.
#
# scripts/test.sh runs this after clippy (the binary is then already built).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

die() {
  printf 'scripts/lib-pure.sh: %s\n' "$*" >&2
  exit 1
}

# Build (or find, when it is up to date) the lib test binary.
bin=$(cargo test --lib --no-run --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[[ -n $bin && -x $bin ]] || die "cargo test --lib --no-run named no test binary"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mkdir -m 0700 "$work/home"
trace=$work/execve.trace

as_user=()
who="$(id -un) (uid $EUID)"
if ((EUID == 0)); then
  setpriv=$(command -v setpriv) || die "setpriv (util-linux) is missing"
  nobody=(--reuid=65534 --regid=65534 --clear-groups)
  if "$setpriv" "${nobody[@]}" test -r "$repo/README.md" -a -x "$bin" 2>/dev/null; then
    chown 65534:65534 "$work/home"
    as_user=("$setpriv" "${nobody[@]}")
    who="nobody (uid 65534)"
  else
    echo "note: nobody cannot read $repo or run $bin: running as root (still PATH=/nonexistent)"
  fi
fi

tracer=()
if strace=$(command -v strace 2>/dev/null); then
  tracer=("$strace" -f -qq -e trace=execve -e signal=none -o "$trace")
else
  echo "note: strace is not installed: the programs the tests execute are not checked"
fi

echo "lib tests as $who, PATH=/nonexistent: $bin"
env -i HOME="$work/home" TMPDIR="$work/home" PATH=/nonexistent RUST_BACKTRACE=1 \
  "${tracer[@]}" "${as_user[@]}" "$bin" "$@" </dev/null

if ((${#tracer[@]})); then
  # Every path execve was called with (successful or not: the checker searches its PATH).
  bad=()
  while IFS= read -r path; do
    case $path in
      "$bin" | "${as_user[0]:-}") ;;            # the test binary, setpriv starting it
      */sh | */cat | */env | */sleep | */true) ;; # base system, for the spawn tests
      */snapguard-no-such-checker) ;;            # the checker's "missing program" test
      /proc/self/fd/[0-9]*) ;;                   # fexecve of a file a test opened
      "$work/home"/*) ;;                         # symlinks to sh a test made (fake e2fsck)
      *) bad+=("$path") ;;
    esac
  done < <(grep -o 'execve("[^"]*"' "$trace" | sed 's/^execve("//; s/"$//' | sort -u)
  if ((${#bad[@]})); then
    printf 'the lib tests executed programs outside the allowlist (move such tests to tests/):\n' >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "executed: only the allowlisted base-system programs ($(grep -c 'execve(' "$trace") execve calls)"
fi

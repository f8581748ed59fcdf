#!/usr/bin/env bash
# snapguard's test command: the one the README shows and .ci/run calls.
#
#   scripts/test.sh [ARGS...]
#
# 1. Installs the filesystem tools the tests drive (apt-get, only when one is missing), and
#    cargo-afl at the version fuzz/Cargo.lock pins (cargo install, only when missing), the
#    prometheus_client Python module (pip install, only when missing): tests/preflight.rs
#    parses the --prometheus textfile with its parser, and ansible-core (pip install, only
#    when ansible-playbook is missing): tests/ansible.rs runs scripts/ansible/ with it.
# 2. Makes sure loop devices can be set up (privileged tests need them).
# 3. cargo fmt --check, cargo clippy --all-targets -- -D warnings, then scripts/lib-pure.sh:
#    the unit tests as nobody with PATH=/nonexistent, executing no tool.
# 4. The fuzz smoke: scripts/fuzz.sh --smoke (every target a few seconds; a crash fails).
# 5. Doctests (cargo test --doc), then the whole suite with cargo-nextest when it is installed,
#    else with cargo test. ARGS go to that runner unchanged, e.g.
#      scripts/test.sh json_schema                 # filter (both runners)
#      scripts/test.sh --no-capture                # nextest: show test output
#      SNAPGUARD_TEST_RUNNER=cargo scripts/test.sh -- --nocapture
#
# Environment:
#   SNAPGUARD_TEST_RUNNER=nextest|cargo  force a runner (default: nextest if available)
#   SNAPGUARD_NO_INSTALL=1               never call apt-get, pip or cargo install; fail if a
#                                        tool is missing
#   SNAPGUARD_FUZZ_SMOKE=0               leave out the fuzz smoke (CI runs it)
#   SNAPGUARD_CORPUS                     e2fsprogs image corpus; defaults to ../shared/corpus
#                                        beside the repository when that directory exists
#   SNAPGUARD_REQUIRE_PRIVILEGED=1       (set by .ci/run) privileged tests fail instead of
#                                        skipping; here it also makes a loop-device problem fatal
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '\n==> %s\n' "$*"; }
run() {
  printf '+ %s\n' "$*"
  "$@"
}
die() {
  printf 'scripts/test.sh: %s\n' "$*" >&2
  exit 1
}
# `command -v` alone also "finds" a non-executable file of that name.
# have TOOL: an executable on PATH; have /PATH: that file exists (data-only packages).
have() {
  local p
  if [[ $1 == /* ]]; then
    [[ -e $1 ]]
    return
  fi
  p=$(command -v "$1" 2>/dev/null) && [[ -x $p ]]
}

# The mkfs/fsck tools live in /sbin and /usr/sbin, which a non-login shell may lack.
for d in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

# --- 1. tools --------------------------------------------------------------------------------
# tool -> Debian package (losetup is in "mount" on Debian 12, fsfreeze in "util-linux").
declare -A pkg_of=(
  [dumpe2fs]=e2fsprogs [debugfs]=e2fsprogs [mkfs.ext4]=e2fsprogs [tune2fs]=e2fsprogs
  [e2fsck]=e2fsprogs
  [mkfs.xfs]=xfsprogs [xfs_io]=xfsprogs [xfs_db]=xfsprogs [xfs_logprint]=xfsprogs
  [mkfs.btrfs]=btrfs-progs
  [mkfs.fat]=dosfstools [fsck.fat]=dosfstools
  [mkfs.exfat]=exfatprogs [fsck.exfat]=exfatprogs
  [mkfs.f2fs]=f2fs-tools [fsck.f2fs]=f2fs-tools
  [sfdisk]=fdisk [sgdisk]=gdisk
  [qemu-img]=qemu-utils
  [hyperfine]=hyperfine
  [fsfreeze]=util-linux [losetup]=mount
  [stdbuf]=coreutils
  # cargo-afl builds its own AFL++ (the one `cargo afl fuzz` runs) with make and cc.
  [make]=make
  # scripts/lib-pure.sh checks which programs the unit tests execute.
  [strace]=strace [setpriv]=util-linux
  # snapguard selinux: matchpathcon and semanage are the reference for the file_contexts
  # matcher; the policy itself is data (installing it does not enable SELinux).
  [matchpathcon]=selinux-utils [semanage]=policycoreutils-python-utils
  [restorecon]=policycoreutils
  [/etc/selinux/default/contexts/files/file_contexts]=selinux-policy-default
  # tests/systemd_units.rs verifies every unit (systemd-analyze verify; installing the package
  # does not make systemd PID 1); tests/install.rs renders the man pages (man -l, with groff's
  # warnings) and shellchecks scripts/install.sh.
  [systemd-analyze]=systemd [man]=man-db [shellcheck]=shellcheck
)

say "checking test tools"
missing_tools=()
missing_pkgs=()
for tool in "${!pkg_of[@]}"; do
  if ! have "$tool"; then
    missing_tools+=("$tool")
    pkg=${pkg_of[$tool]}
    case " ${missing_pkgs[*]-} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
  fi
done

if ((${#missing_tools[@]})); then
  echo "missing: ${missing_tools[*]}"
  if [[ ${SNAPGUARD_NO_INSTALL:-0} == 1 ]]; then
    die "SNAPGUARD_NO_INSTALL=1 and tools are missing; install: apt-get install ${missing_pkgs[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "no apt-get here; install the packages providing: ${missing_tools[*]}"
  sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "not root and no password-less sudo; run: sudo apt-get install ${missing_pkgs[*]}"
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  run "${sudo[@]}" apt-get update -q
  run "${sudo[@]}" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing_pkgs[@]}" </dev/null
  hash -r
  for tool in "${missing_tools[@]}"; do
    have "$tool" || die "$tool is still missing after installing ${pkg_of[$tool]}"
  done
else
  echo "all present"
fi

# prometheus_client: the real text-format parser tests/preflight.rs checks the textfile with.
if python3 -c 'import prometheus_client.parser' 2>/dev/null; then
  echo "prometheus_client present"
elif [[ ${SNAPGUARD_NO_INSTALL:-0} == 1 ]]; then
  die "SNAPGUARD_NO_INSTALL=1 and the prometheus_client Python module is missing;" \
    "install: python3 -m pip install prometheus_client"
else
  command -v python3 >/dev/null 2>&1 || die "python3 is missing (the preflight tests need it)"
  # A distribution Python may refuse pip outside a venv (PEP 668): the flag is for that case.
  run python3 -m pip install -q prometheus_client ||
    run python3 -m pip install -q --break-system-packages prometheus_client
  python3 -c 'import prometheus_client.parser' || die "prometheus_client still missing after pip install"
fi

# ansible-core: tests/ansible.rs runs scripts/ansible/snapguard-preflight.yml with the real
# ansible-playbook (-c local).
if have ansible-playbook; then
  echo "ansible-playbook present"
elif [[ ${SNAPGUARD_NO_INSTALL:-0} == 1 ]]; then
  die "SNAPGUARD_NO_INSTALL=1 and ansible-playbook is missing;" \
    "install: python3 -m pip install ansible-core"
else
  command -v python3 >/dev/null 2>&1 || die "python3 is missing (ansible-core needs it)"
  run python3 -m pip install -q ansible-core ||
    run python3 -m pip install -q --break-system-packages ansible-core
  hash -r
  have ansible-playbook || die "ansible-playbook still missing after pip install ansible-core" \
    "(is pip's script directory on PATH?)"
fi

# cargo-afl for the fuzz smoke, at the version of the afl crate fuzz/Cargo.lock pins: its
# install also builds the AFL++ it runs (scripts/fuzz.sh rebuilds that when the Rust
# toolchain changed). The Debian afl++ package is not used.
fuzz_smoke=${SNAPGUARD_FUZZ_SMOKE:-1}
if [[ $fuzz_smoke != 0 ]]; then
  afl_version=$(awk '$0 == "name = \"afl\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' fuzz/Cargo.lock)
  [[ -n $afl_version ]] || die "fuzz/Cargo.lock pins no afl crate"
  installed=$(cargo afl --version 2>/dev/null | awk '{ print $2 }') || true
  if [[ $installed == "$afl_version" ]]; then
    echo "cargo-afl $installed"
  elif [[ ${SNAPGUARD_NO_INSTALL:-0} == 1 ]]; then
    die "SNAPGUARD_NO_INSTALL=1 and cargo-afl $afl_version is missing (have: ${installed:-none});" \
      "install: cargo install --locked cargo-afl --version $afl_version"
  else
    run cargo install --locked cargo-afl --version "$afl_version"
  fi
fi

# --- 2. loop devices -------------------------------------------------------------------------
say "checking loop devices"
loop_ok=0
if ((EUID == 0)); then
  if [[ ! -e /dev/loop-control ]]; then
    if command -v modprobe >/dev/null 2>&1; then
      run modprobe loop || echo "modprobe loop failed (built in, or no module access); going on"
    fi
    # A container may have the driver but no node: loop-control is char 10:237.
    [[ -e /dev/loop-control ]] || run mknod -m 0660 /dev/loop-control c 10 237 || true
  fi
  # losetup -f asks loop-control for a free index, which may be past the nodes a container's
  # /dev has; create the usual first 16 block nodes (major 7) when they are absent. This only
  # makes device nodes: it attaches nothing.
  if [[ -e /dev/loop-control ]]; then
    for i in $(seq 0 15); do
      [[ -e /dev/loop$i ]] || mknod -m 0660 "/dev/loop$i" b 7 "$i" 2>/dev/null || true
    done
  fi
  if free_loop=$(losetup -f 2>/dev/null) && [[ -b $free_loop ]]; then
    echo "losetup -f: $free_loop"
    loop_ok=1
  fi
  if ((!loop_ok)); then
    msg="losetup -f does not give a usable loop device: loop-device tests will fail or skip"
    if [[ ${SNAPGUARD_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
      die "$msg (SNAPGUARD_REQUIRE_PRIVILEGED=1)"
    fi
    echo "warning: $msg"
  fi
else
  echo "not root: privileged tests (loop devices, freeze, repair) will skip"
  if [[ ${SNAPGUARD_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
    die "SNAPGUARD_REQUIRE_PRIVILEGED=1 but not running as root"
  fi
fi

# --- 3. corpus -------------------------------------------------------------------------------
if [[ -z ${SNAPGUARD_CORPUS:-} && -d $repo/../shared/corpus ]]; then
  SNAPGUARD_CORPUS=$(cd "$repo/../shared/corpus" && pwd)
  export SNAPGUARD_CORPUS
fi
echo "SNAPGUARD_CORPUS=${SNAPGUARD_CORPUS:-(unset)}"
echo "SNAPGUARD_REQUIRE_PRIVILEGED=${SNAPGUARD_REQUIRE_PRIVILEGED:-0}"

# --- 4. lint and tests -----------------------------------------------------------------------
say "format"
run cargo fmt --check

say "lint"
run cargo clippy --all-targets -- -D warnings

# The unit tests need no tool, root, loop device or corpus: run them as nobody with
# PATH=/nonexistent, and fail if they execute anything but the base-system programs the
# process-spawning tests use (strace).
say "unit tests are pure (cargo test --lib as nobody, PATH=/nonexistent)"
run scripts/lib-pure.sh -q

# Tests that cannot run here (a missing tool, corpus or privilege) append one line each to
# this file (tests/common skip()); it is listed after the runner's summary, since nextest
# hides a passing test's output.
skip_log=${CARGO_TARGET_DIR:-$repo/target}/tmp/skipped-tests.log
rm -f "$skip_log"
report_skips() {
  local n=0
  [[ -f $skip_log ]] && n=$(sort -u "$skip_log" | wc -l)
  if ((n)); then
    printf '\n==> %d tests skipped (SNAPGUARD_REQUIRE_PRIVILEGED=1 makes each a failure):\n' "$n"
    sort -u "$skip_log" | sed 's/^/  SKIP /'
  fi
}
trap report_skips EXIT

if [[ $fuzz_smoke != 0 ]]; then
  say "fuzz smoke (scripts/fuzz.sh --smoke)"
  run scripts/fuzz.sh --smoke
fi

runner=${SNAPGUARD_TEST_RUNNER:-}
if [[ -z $runner ]]; then
  if cargo nextest --version >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
fi

case $runner in
  nextest)
    # nextest does not run doctests: run them first, so that nextest's summary stays the
    # last line of the run.
    say "doctests"
    run cargo test --doc
    say "tests (cargo nextest)"
    run cargo nextest run --no-fail-fast "$@"
    ;;
  cargo)
    say "tests (cargo test)"
    run cargo test --no-fail-fast "$@"
    ;;
  *) die "SNAPGUARD_TEST_RUNNER must be nextest or cargo, not '$runner'" ;;
esac

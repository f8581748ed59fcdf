#!/usr/bin/env bash
# Coverage-guided fuzzing of the on-disk and audit parsers (afl.rs + AFL++, stable toolchain).
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]   fuzz TARGET (default: all) for SECONDS each (60)
#   scripts/fuzz.sh --smoke                  every target for 5 s: builds, runs, no crash
#
# Targets (fuzz/src/bin/): ext xfs btrfs fat exfat f2fs partition scan the input as an image
# with `snapguard scan`'s own code path; audit feeds it to the audit-log parsers.
# Seeds are made here with the mkfs tools (small images, first bytes of large ones) and, for
# ext, taken from $SNAPGUARD_CORPUS/e2fsprogs (default ../shared/corpus; read, never copied
# into the repository). Output: target/fuzz/out/TARGET; a crash fails the run and is listed:
# turn each into a regression test.
# Needs: cargo-afl at the afl version fuzz/Cargo.lock pins (scripts/test.sh installs it:
# cargo install --locked cargo-afl --version V; that also builds the AFL++ it runs, and this
# script runs `cargo afl config --build` when the Rust toolchain changed since), mkfs tools.
# Runs without a terminal (CI): no UI, stdin from /dev/null, each afl-fuzz under a timeout;
# no CPU-governor or core_pattern tuning needed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
for d in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

all=(ext xfs btrfs fat exfat f2fs partition audit)
target=${1:-all}
seconds=${2:-60}
if [[ $target == --smoke ]]; then
  target=all
  seconds=${SNAPGUARD_FUZZ_SMOKE_SECONDS:-5}
fi
if [[ $target == all ]]; then targets=("${all[@]}"); else targets=("$target"); fi
for t in "${targets[@]}"; do
  case " ${all[*]} " in *" $t "*) ;; *) echo "scripts/fuzz.sh: unknown target '$t' (${all[*]})" >&2; exit 2 ;; esac
done

afl_version=$(awk '$0 == "name = \"afl\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' fuzz/Cargo.lock)
command -v cargo-afl >/dev/null 2>&1 || {
  echo "scripts/fuzz.sh: cargo-afl missing: cargo install --locked cargo-afl --version $afl_version" >&2
  exit 2
}
installed=$(cargo afl --version | awk '{ print $2 }')
if [[ $installed != "$afl_version" ]]; then
  echo "scripts/fuzz.sh: cargo-afl $installed, but fuzz/Cargo.lock pins afl $afl_version:" \
    "cargo install --locked cargo-afl --version $afl_version" >&2
  exit 2
fi
# AFL++ and its runtime are built per Rust version (under ~/.local/share/afl.rs): after a
# toolchain update `cargo afl` refuses to run until they are rebuilt.
afl_check=$(cargo afl fuzz -h 2>&1 </dev/null) || true
if [[ $afl_check == *"runtime was not built"* ]]; then
  echo "==> building AFL++ for this Rust toolchain (cargo afl config --build)"
  cargo afl config --build </dev/null
fi

out=$repo/target/fuzz
export CARGO_TARGET_DIR=$out
echo "==> building the fuzz targets (cargo afl build --release, into $out)"
(cd fuzz && cargo afl build --release --locked -q </dev/null)
bin=$out/release

if [[ -z ${SNAPGUARD_CORPUS:-} && -d $repo/../shared/corpus ]]; then
  SNAPGUARD_CORPUS=$(cd "$repo/../shared/corpus" && pwd)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# head BYTES FILE DST: the first BYTES of FILE (AFL takes inputs up to 1 MiB).
head_of() { head -c "$1" "$2" >"$3"; }
sparse() { rm -f "$1"; truncate -s "$2" "$1"; }

seeds() {
  local t=$1 dir=$out/seeds/$1 img=$tmp/$1.img
  rm -rf "$dir"
  mkdir -p "$dir"
  case $t in
    ext)
      sparse "$img" 512K && mkfs.ext4 -q -F -b 1024 -N 32 -O ^has_journal "$img" && cp "$img" "$dir/ext4-nojournal"
      sparse "$img" 256K && mkfs.ext2 -q -F -b 1024 -N 16 "$img" && cp "$img" "$dir/ext2"
      if [[ -d ${SNAPGUARD_CORPUS:-}/e2fsprogs ]]; then
        local f n=0
        for f in "$SNAPGUARD_CORPUS"/e2fsprogs/*.img.gz; do
          gzip -dc "$f" >"$img" 2>/dev/null || continue
          if (($(stat -c %s "$img") <= 1048576)); then cp "$img" "$dir/$(basename "$f" .img.gz)"; n=$((n + 1)); fi
          ((n < 40)) || break
        done
      fi
      ;;
    xfs) sparse "$img" 512M && mkfs.xfs -q -f "$img" && head_of 65536 "$img" "$dir/xfs" ;;
    btrfs) sparse "$img" 256M && mkfs.btrfs -q -f "$img" >/dev/null && head_of 131072 "$img" "$dir/btrfs" ;;
    fat)
      sparse "$img" 1M && mkfs.fat -F 12 "$img" >/dev/null && cp "$img" "$dir/fat12"
      sparse "$img" 32M && mkfs.fat -F 16 "$img" >/dev/null && head_of 1048576 "$img" "$dir/fat16"
      ;;
    exfat) sparse "$img" 8M && mkfs.exfat "$img" >/dev/null && head_of 1048576 "$img" "$dir/exfat" ;;
    f2fs) sparse "$img" 64M && mkfs.f2fs -q -f "$img" >/dev/null && head_of 1048576 "$img" "$dir/f2fs" ;;
    partition)
      sparse "$img" 4M && printf 'label: dos\n2048,,L\n' | sfdisk -q "$img" >/dev/null && head_of 4096 "$img" "$dir/mbr"
      sparse "$img" 4M && printf 'label: gpt\n,,L\n' | sfdisk -q "$img" >/dev/null && head_of 65536 "$img" "$dir/gpt"
      ;;
    audit)
      printf '%s\n' 'type=AVC msg=audit(1700000000.123:42): avc:  denied  { read } for  pid=1 comm="waagent" name="x" scontext=system_u:system_r:waagent_t:s0 tcontext=system_u:object_r:etc_t:s0 tclass=file permissive=0' \
        'type=USER_AVC msg=audit(1700000000.5:7): pid=1 uid=0 msg='"'"'avc:  denied  { start } for auid=n/a uid=0 gid=0 path="/x" cmdline="" scontext=a:b:c:s0 tcontext=a:b:d:s0 tclass=service permissive=1'"'"'' >"$dir/log"
      printf '%s\n' '{"MESSAGE":"avc:  denied  { write } for pid=3 comm=636F6D6D scontext=a:b:c tcontext=a:b:c tclass=dir permissive=0","_AUDIT_TYPE":"1400","__REALTIME_TIMESTAMP":"1700000000000000"}' >"$dir/journal"
      printf 'log_file = /var/log/audit/audit.log\nnum_logs = 5\nmax_log_file_action = keep_logs\n' >"$dir/auditd.conf"
      ;;
  esac
}

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_QUIET=1 AFL_SKIP_CRASHES=1
failed=0
summary=()
for t in "${targets[@]}"; do
  seeds "$t" || echo "scripts/fuzz.sh: some $t seeds could not be made" >&2
  if [[ -z $(ls -A "$out/seeds/$t") ]]; then
    echo "scripts/fuzz.sh: no seeds for $t (mkfs tool missing?)" >&2
    failed=1
    continue
  fi
  rm -rf "$out/out/$t"
  mkdir -p "$out/out"
  echo "==> fuzz $t for ${seconds}s ($(ls "$out/seeds/$t" | wc -l) seeds)"
  # -V stops afl-fuzz after SECONDS of fuzzing; the timeout only catches a stuck start
  # (seed calibration on a loaded machine takes a few seconds).
  timeout -k 10 $((seconds + 300)) cargo afl fuzz -i "$out/seeds/$t" -o "$out/out/$t" \
    -V "$seconds" -t 2000 -- "$bin/$t" </dev/null >"$out/out-$t.log" 2>&1 || {
    echo "afl-fuzz failed for $t (exit $?): see $out/out-$t.log" >&2
    tail -n 20 "$out/out-$t.log" >&2
    failed=1
    continue
  }
  # afl-fuzz kills its targets, so their image directories (fuzz/src/lib.rs) stay behind.
  rm -rf /dev/shm/snapguard-fuzz-"$t"-* "${TMPDIR:-/tmp}"/snapguard-fuzz-"$t"-*
  stats=$out/out/$t/default/fuzzer_stats
  execs=$(awk -F' *: *' '$1=="execs_done"{print $2}' "$stats")
  crashes=$(find "$out/out/$t/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/out/$t/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
  summary+=("$(printf '%-10s %10s execs  %3d crashes  %3d hangs' "$t" "$execs" "$crashes" "$hangs")")
  if ((crashes)); then
    failed=1
    find "$out/out/$t/default/crashes" -type f -name 'id:*' | sed 's/^/  crash: /'
  fi
done
printf '\n==> fuzz summary (%ss per target)\n' "$seconds"
printf '%s\n' "${summary[@]}"
exit "$failed"

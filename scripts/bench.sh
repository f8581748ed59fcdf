#!/usr/bin/env bash
# snapguard benchmarks (DESIGN.md section 5): each one times snapguard against what an admin
# would otherwise run, in the same hyperfine run, and prints the ratio.
#
#   scripts/bench.sh [BENCH...]     BENCH: scan (default) | xfs | all
#
#   scan   `snapguard scan --json` of 100 ext4 images in one process, against a `dumpe2fs -h`
#          loop and a `tune2fs -l` loop over the same images; plus snapguard's peak RSS.
#   xfs    the XFS dirty-log test on 20 images (10 clean, 10 crash copies with a dirty log),
#          `snapguard scan --json` against an `xfs_logprint -t` loop. Making the dirty copies
#          loop-mounts an image, so it needs root; as another user all 20 are clean.
#   freeze the frozen window (first FIFREEZE to last FITHAW) and the longest stall a background
#          writer sees, with a few hundred MiB of dirty data, `snapguard freeze -- true` against
#          `fsfreeze -f M; fsfreeze -u M`, alternating in one run on one loop-mounted ext4
#          (root only: loop device, mount, freeze; never any other filesystem).
#
# Results: a Markdown table on stdout and in target/bench/<bench>.md, hyperfine's JSON beside
# it. Runs as any user (image files only: no loop devices, no root). Installs hyperfine and
# GNU time with apt-get when missing and when it can (root or password-less sudo).
#
# To add a benchmark: write bench_NAME (use $work for scratch files, call write_table), and
# list it in BENCHES below. Planned: holder scan vs `fuser -vm`/`lsof`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
for d in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

target_dir=${CARGO_TARGET_DIR:-$repo/target}
out_dir=$target_dir/bench
bin=$target_dir/release/snapguard
RUNS=${BENCH_RUNS:-10}
WARMUP=${BENCH_WARMUP:-2}

# name:function, in the order `all` runs them.
BENCHES=(scan:bench_scan_ext xfs:bench_xfs_log freeze:bench_freeze_window)

say() { printf '\n==> %s\n' "$*" >&2; }
die() {
  printf 'scripts/bench.sh: %s\n' "$*" >&2
  exit 1
}

# need PACKAGE TOOL...: install PACKAGE when one of the TOOLs is missing.
need() {
  local pkg=$1 tool
  shift
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      say "installing $pkg (for $tool)"
      local sudo=()
      ((EUID == 0)) || sudo=(sudo -n)
      [[ -n ${apt_updated:-} ]] || "${sudo[@]}" apt-get update -q || die "apt-get update failed"
      apt_updated=1
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
        --no-install-recommends "$pkg" </dev/null || die "cannot install $pkg; install it by hand"
      command -v "$tool" >/dev/null 2>&1 || die "$tool still missing after installing $pkg"
      return
    fi
  done
}

build() {
  say "cargo build --release"
  cargo build --release --bin snapguard
  [[ -x $bin ]] || die "no binary at $bin"
}

# write_table NAME REF_NAME TITLE CSV [EXTRA_LINE...]: Markdown table of a hyperfine CSV export,
# each mean divided by REF_NAME's mean; printed and saved to $out_dir/NAME.md.
write_table() {
  local name=$1 ref=$2 title=$3 csv=$4
  shift 4
  local md=$out_dir/$name.md
  {
    printf '### %s\n\n' "$title"
    awk -F, -v ref="$ref" '
      NR == 1 { next }
      { cmd[NR] = $1; mean[NR] = $2 * 1000; sd[NR] = $3 * 1000; if ($1 == ref) base = $2 * 1000 }
      END {
        if (!base) { print "reference command " ref " not in results" > "/dev/stderr"; exit 1 }
        print "| command | mean (ms) | ± σ (ms) | time vs snapguard |"
        print "|---|---:|---:|---:|"
        for (i = 2; i <= NR; i++)
          printf "| %s | %.1f | %.1f | %.2f× |\n", cmd[i], mean[i], sd[i], mean[i] / base
      }' "$csv"
    printf '\n'
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
  } >"$md"
  cat "$md"
  say "saved $md"
}

machine_line() {
  printf '%s, %s cores, kernel %s, %s, snapguard %s; %s warm-cache runs after %s warm-ups.' \
    "$(date -u +%Y-%m-%d)" "$(nproc)" "$(uname -r)" \
    "$(dumpe2fs -V 2>&1 | head -n1 | awk '{print "e2fsprogs " $2}')" \
    "$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)" "$RUNS" "$WARMUP"
}

# --- scan: 100 ext4 images -------------------------------------------------------------------
# Image mix (sparse files of 16, 24 or 32 MiB): 40 clean, 20 not cleanly unmounted
# (state 0), 20 clean with an error history (error_count and first/last error recorded),
# 20 with the errors flag set (state 2 or 3).
make_ext_images() {
  local dir=$1 n=$2 i img
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    img=$(printf '%s/ext4-%03d.img' "$dir" "$i")
    truncate -s "$((16 + (i % 3) * 8))M" "$img"
    mkfs.ext4 -q -F -L "bench$i" "$img" </dev/null
    case $((i % 5)) in
      0 | 1) ;;
      2) debugfs -w -R "ssv state 0" "$img" >/dev/null 2>&1 ;;
      3)
        printf '%s\n' 'ssv error_count 3' 'ssv first_error_time 20240102030405' \
          'ssv first_error_func ext4_lookup' 'ssv first_error_line 1234' \
          'ssv first_error_ino 12' 'ssv last_error_time 20240203040506' \
          'ssv last_error_func ext4_find_entry' 'ssv last_error_line 1601' >"$dir/cmds"
        debugfs -w -f "$dir/cmds" "$img" >/dev/null 2>&1
        ;;
      4) debugfs -w -R "ssv state $((2 + i % 2))" "$img" >/dev/null 2>&1 ;;
    esac
  done
  rm -f "$dir/cmds"
}

bench_scan_ext() {
  local n=100 dir=$work/scan-ext
  need e2fsprogs mkfs.ext4 debugfs dumpe2fs tune2fs
  say "making $n ext4 images in $dir"
  make_ext_images "$dir" "$n"
  local imgs=("$dir"/ext4-*.img)
  ((${#imgs[@]} == n)) || die "expected $n images, made ${#imgs[@]}"

  # One checked run first: exit 0-2 is a verdict, 3 (could not assess) or a crash is a bug.
  say "checking snapguard on the images"
  local rc=0
  /usr/bin/time -f %M -o "$work/rss" "$bin" scan --json "${imgs[@]}" >"$work/scan.json" ||
    rc=$?
  ((rc <= 2)) || die "snapguard scan exited $rc on the benchmark images"
  local rss_kib summary
  rss_kib=$(tail -n1 "$work/rss")
  summary=$(grep -oE '"(ok|warning|critical|unknown)": *[0-9]+' "$work/scan.json" | head -n4 |
    tr -d '" ' | paste -sd' ' -)

  # The snapguard command checks its own exit code the same way on every run; the loops'
  # status is the last tool's, always 0 here.
  local sg loop_dump loop_tune
  sg="$(printf '%q ' "$bin" scan --json "${imgs[@]}")>/dev/null; [ \$? -le 2 ]"
  loop_dump="for i in $(printf '%q ' "${imgs[@]}"); do dumpe2fs -h \"\$i\"; done >/dev/null 2>&1"
  loop_tune="for i in $(printf '%q ' "${imgs[@]}"); do tune2fs -l \"\$i\"; done >/dev/null 2>&1"

  say "hyperfine: $n images"
  mkdir -p "$out_dir"
  hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic \
    --export-json "$out_dir/scan.json" --export-csv "$work/scan.csv" \
    --command-name "snapguard scan --json ($n images in 1 process)" "$sg" \
    --command-name "dumpe2fs -h loop ($n processes)" "$loop_dump" \
    --command-name "tune2fs -l loop ($n processes)" "$loop_tune"

  write_table scan "snapguard scan --json ($n images in 1 process)" \
    "scan: $n ext4 images (16-32 MiB, clean / not clean / error history / errors flag)" \
    "$work/scan.csv" \
    "snapguard peak RSS: $(awk -v k="$rss_kib" 'BEGIN { printf "%.1f MiB (%d KiB, GNU time %%M)", k / 1024, k }')." \
    "snapguard verdicts: ${summary:-?} (exit $rc)." \
    "$(machine_line)"
}

# --- xfs: 20 XFS images, dirty-log detection -------------------------------------------------
# make_xfs_dirty_copy SRC DST: copy SRC while it is loop-mounted and being written to, which
# leaves a dirty log in DST (a crash-consistent copy). Only our own loop device is detached.
make_xfs_dirty_copy() {
  local src=$1 dst=$2 mnt dev
  mnt=$(mktemp -d "$work/mnt.XXXXXX")
  dev=$(losetup --find --show "$src")
  if mount "$dev" "$mnt"; then
    xfs_io -f -c "pwrite -q 0 1m" -c fsync "$mnt/f" >/dev/null
    cp --sparse=always "$src" "$dst"
    umount "$mnt"
  fi
  [[ $(cat "/sys/block/${dev#/dev/}/loop/backing_file") == "$(realpath "$src")" ]] && losetup -d "$dev"
  rmdir "$mnt"
  [[ -e $dst ]]
}

bench_xfs_log() {
  local n=20 dir=$work/xfs i
  need xfsprogs mkfs.xfs xfs_logprint xfs_io
  mkdir -p "$dir"
  say "making $n XFS images in $dir"
  truncate -s 320M "$dir/clean.img"
  mkfs.xfs -q -f "$dir/clean.img"
  local dirty_src=$dir/clean.img
  if ((EUID == 0)) && make_xfs_dirty_copy "$dir/clean.img" "$dir/dirty.img" 2>/dev/null; then
    dirty_src=$dir/dirty.img
  else
    say "not root (or the loop mount failed): every image is clean"
  fi
  for ((i = 0; i < n; i++)); do
    if ((i % 2)); then
      cp --sparse=always "$dirty_src" "$(printf '%s/xfs-%02d.img' "$dir" "$i")"
    else
      cp --sparse=always "$dir/clean.img" "$(printf '%s/xfs-%02d.img' "$dir" "$i")"
    fi
  done
  local imgs=("$dir"/xfs-*.img)

  say "checking snapguard against xfs_logprint -t on each image"
  local img ours theirs dirty=0
  for img in "${imgs[@]}"; do
    # Exit 1 (warning) is expected for a dirty offline log: only the verdict matters here.
    ours=$({ "$bin" scan --json "$img" || true; } | grep -oE '"log_clean": *(true|false)' |
      grep -oE 'true|false')
    theirs=$(xfs_logprint -t "$img" 2>/dev/null | grep -qF '<CLEAN>' && echo true || echo false)
    [[ $ours == "$theirs" ]] || die "$img: snapguard log_clean=$ours, xfs_logprint clean=$theirs"
    [[ $ours == false ]] && dirty=$((dirty + 1))
  done

  local sg loop
  sg="$(printf '%q ' "$bin" scan --json "${imgs[@]}")>/dev/null; [ \$? -le 2 ]"
  loop="for i in $(printf '%q ' "${imgs[@]}"); do xfs_logprint -t \"\$i\"; done >/dev/null 2>&1"
  say "hyperfine: $n images"
  mkdir -p "$out_dir"
  hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic \
    --export-json "$out_dir/xfs.json" --export-csv "$work/xfs.csv" \
    --command-name "snapguard scan --json ($n images in 1 process)" "$sg" \
    --command-name "xfs_logprint -t loop ($n processes)" "$loop"
  write_table xfs "snapguard scan --json ($n images in 1 process)" \
    "xfs: dirty-log test on $n XFS images (320 MiB; $dirty with a dirty log)" \
    "$work/xfs.csv" \
    "Every image's clean/dirty verdict agreed with xfs_logprint -t before timing." \
    "$(machine_line) $(mkfs.xfs -V 2>&1 | head -n1)."
}

# --- freeze: frozen window and writer stall vs fsfreeze -f; fsfreeze -u ----------------------
# One ext4 image (sparse, in $work) on our own loop device, mounted under $work. A background
# writer rewrites 1 MiB blocks of a 256 MiB file at ~100 MiB/s and logs every write that took
# longer than 1 ms (CLOCK_MONOTONIC). Before each measured freeze, FREEZE_DIRTY_MIB (default 400)
# MiB of dirty page cache are written (no sync). The runs alternate between the two tools.
#   fsfreeze pair: window = wall time of `fsfreeze -f M; fsfreeze -u M` (writers block from the
#                  start of FIFREEZE, whose kernel sync flushes everything, to FITHAW);
#   snapguard:     window = the report's window_ms (first FIFREEZE call to last FITHAW return;
#                  its bounded syncfs runs before, while writers still run).
# Stall = the longest single write of the background writer during the command.
bench_freeze_window() {
  ((EUID == 0)) || die "the freeze benchmark needs root (loop device, mount, FIFREEZE)"
  need e2fsprogs mkfs.ext4
  need util-linux fsfreeze
  need python3 python3
  local runs=${FREEZE_RUNS:-$RUNS} dirty=${FREEZE_DIRTY_MIB:-400}
  # Globals, not locals: the EXIT trap runs after this function has returned.
  img=$work/freeze.img mnt=$work/freeze-mnt dev=
  truncate -s 2G "$img"
  mkfs.ext4 -q -F "$img"
  mkdir -p "$mnt"
  dev=$(losetup --find --show "$img")
  # Cleanup only touches what we made: thaw and unmount our mount, detach our loop device.
  freeze_cleanup() {
    fsfreeze -u "$mnt" 2>/dev/null || true
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    [[ -n $dev && $(cat "/sys/block/${dev#/dev/}/loop/backing_file" 2>/dev/null) == "$img" ]] &&
      losetup -d "$dev"
    dev=
  }
  trap 'freeze_cleanup; rm -rf "$work"' EXIT
  mount "$dev" "$mnt"
  say "freeze: $runs runs per tool, $dirty MiB dirty before each, writer at ~100 MiB/s"
  python3 - "$bin" "$mnt" "$runs" "$dirty" "$work/freeze.csv" <<'PY'
import json, os, subprocess, sys, threading, time
bin_, mnt, runs, dirty_mib, csv = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
stalls, lock, stop = [], threading.Lock(), False
def writer():
    fd = os.open(os.path.join(mnt, "writer.dat"), os.O_WRONLY | os.O_CREAT, 0o644)
    block, i = b"w" * (1 << 20), 0
    while not stop:
        t0 = time.monotonic_ns()
        os.pwrite(fd, block, (i % 256) << 20)
        t1 = time.monotonic_ns()
        if t1 - t0 > 1_000_000:
            with lock: stalls.append((t0, t1))
        i += 1
        time.sleep(0.01)
    os.close(fd)
th = threading.Thread(target=writer, daemon=True); th.start()
def make_dirty():
    with open(os.path.join(mnt, "dirty.dat"), "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(dirty_mib): f.write(chunk)
def stall(t0, t1):
    with lock: return max([(b - a) / 1e6 for a, b in stalls if b >= t0 and a <= t1] or [0.0])
rows = []
for r in range(runs):
    for tool in ("fsfreeze", "snapguard"):
        make_dirty(); time.sleep(0.2)
        t0 = time.monotonic_ns()
        if tool == "fsfreeze":
            subprocess.run(["fsfreeze", "-f", mnt], check=True)
            subprocess.run(["fsfreeze", "-u", mnt], check=True)
            t1 = time.monotonic_ns(); window = (t1 - t0) / 1e6
        else:
            out = subprocess.run([bin_, "freeze", "--json", "--no-hooks", mnt, "--", "true"],
                                 check=True, capture_output=True, text=True).stdout
            t1 = time.monotonic_ns(); window = json.loads(out)["window_ms"]
        time.sleep(0.1)
        rows.append((tool, window, stall(t0, time.monotonic_ns()), (t1 - t0) / 1e6))
stop = True; th.join()
with open(csv, "w") as f:
    for row in rows: f.write("%s,%.3f,%.3f,%.3f\n" % row)
PY
  local md=$out_dir/freeze.md
  mkdir -p "$out_dir"
  {
    printf '### freeze: frozen window and writer stall (%s MiB dirty, writer ~100 MiB/s, %s runs each)\n\n' "$dirty" "$runs"
    awk -F, '
      { n[$1]++; w[$1] += $2; s[$1] += $3; c[$1] += $4; if ($2 > wmax[$1]) wmax[$1] = $2 }
      END {
        print "| command | frozen window mean (ms) | max (ms) | writer stall mean (ms) | command wall time (ms) |"
        print "|---|---:|---:|---:|---:|"
        printf "| snapguard freeze -- true | %.1f | %.1f | %.1f | %.1f |\n", w["snapguard"]/n["snapguard"], wmax["snapguard"], s["snapguard"]/n["snapguard"], c["snapguard"]/n["snapguard"]
        printf "| fsfreeze -f M; fsfreeze -u M | %.1f | %.1f | %.1f | %.1f |\n", w["fsfreeze"]/n["fsfreeze"], wmax["fsfreeze"], s["fsfreeze"]/n["fsfreeze"], c["fsfreeze"]/n["fsfreeze"]
        printf "\nRatio (fsfreeze pair / snapguard): frozen window %.1f×, writer stall %.1f×.\n", (w["fsfreeze"]/n["fsfreeze"]) / (w["snapguard"]/n["snapguard"]), (s["fsfreeze"]/n["fsfreeze"]) / (s["snapguard"]/n["snapguard"])
      }' "$work/freeze.csv"
    printf '\n%s, %s cores, kernel %s, snapguard %s; ext4 on a loop device over a sparse file in %s.\n' \
      "$(date -u +%Y-%m-%d)" "$(nproc)" "$(uname -r)" \
      "$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)" "${TMPDIR:-/tmp}"
  } >"$md"
  cat "$md"
  say "saved $md"
  freeze_cleanup
}

# --- main ------------------------------------------------------------------------------------
usage() {
  local names=("${BENCHES[@]%%:*}")
  printf 'usage: scripts/bench.sh [%s|all]...\n' "$(
    IFS='|'
    echo "${names[*]}"
  )" >&2
  exit 2
}

main() {
  local selected=() arg entry
  (($#)) || set -- scan
  for arg in "$@"; do
    case $arg in
      all) selected=("${BENCHES[@]}") ;;
      -h | --help) usage ;;
      *)
        for entry in "${BENCHES[@]}"; do
          if [[ ${entry%%:*} == "$arg" ]]; then
            selected+=("$entry")
            continue 2
          fi
        done
        usage
        ;;
    esac
  done

  need hyperfine hyperfine
  [[ -x /usr/bin/time ]] || need time /usr/bin/time
  build

  work=$(mktemp -d "${TMPDIR:-/tmp}/snapguard-bench.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  for entry in "${selected[@]}"; do
    "${entry#*:}"
  done
}

main "$@"

#!/usr/bin/env bash
# snapguard benchmarks (DESIGN.md section 5): each one times snapguard against what an admin
# would otherwise run, in the same hyperfine run, and prints the ratio.
#
#   scripts/bench.sh [BENCH...]     BENCH: scan (default) | xfs | freeze | holders | all
#
#   scan    `snapguard scan --json` of 100 ext4 images in one process, against a `dumpe2fs -h`
#           loop and a `tune2fs -l` loop over the same images; plus snapguard's peak RSS.
#   xfs     the XFS dirty-log test on 20 images (10 clean, 10 crash copies with a dirty log),
#           `snapguard scan --json` against an `xfs_logprint -t` loop. Making the dirty copies
#           loop-mounts an image, so it needs root; as another user all 20 are clean.
#   freeze  the frozen window (first FIFREEZE to last FITHAW) and the longest stall a background
#           writer sees, with a few hundred MiB of dirty data, `snapguard freeze -- true` against
#           `fsfreeze -f M; fsfreeze -u M`, alternating in one run on one loop-mounted ext4
#           (root only: loop device, mount, freeze; never any other filesystem).
#   holders the holder scan of a busy mount among 3000 extra sleeping processes: snapguard's
#           (`snapguard repair --dry-run --force --trust-fence --json M`) against `fuser -vm M`
#           and `lsof +f -- M`, and how many of the 9 holder classes each one's output shows
#           (root only: loop devices, mounts, swapon, unshare; everything on our own image).
#
# Timing (scan, xfs): hyperfine -N, no shell between hyperfine and the command: snapguard is
# started directly and each reference loop as one `sh -c 'for i in ...; do TOOL "$i"; done'`
# (that loop pays one sh start, under 1 % of its time). With a shell around every command,
# hyperfine subtracts its estimate of the shell's start, and it warns that this is
# inaccurate below 5 ms: snapguard's whole run is 2-4 ms, the same order as the shell, so
# its mean moved by a few tenths of a millisecond with the estimate. This is more precise,
# not more favourable: each tool still runs once per image, as an admin would run it, and
# snapguard pays its own process start. Exit codes are checked once before timing (snapguard
# exits 1 or 2 for a warning or critical verdict), and hyperfine -i ignores them while timing.
#
# Results: a Markdown table on stdout and in target/bench/<bench>.md, hyperfine's JSON beside
# it. scan and xfs run as any user (image files only); freeze and holders need root. Installs
# hyperfine, GNU time and the tools a benchmark drives with apt-get when missing and when it can
# (root or password-less sudo). Everything a benchmark makes is undone on exit, also on Ctrl-C.
#
# To add a benchmark: write bench_NAME (use $work for scratch files, register its cleanup in
# cleanups, call write_table), and list it in BENCHES below.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
for d in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

target_dir=${CARGO_TARGET_DIR:-$repo/target}
out_dir=$target_dir/bench
bin= # set by build
RUNS=${BENCH_RUNS:-10}
WARMUP=${BENCH_WARMUP:-2}

# name:function, in the order `all` runs them.
BENCHES=(scan:bench_scan_ext xfs:bench_xfs_log freeze:bench_freeze_window holders:bench_holders)

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

# The release binary as README.md builds it for deployment: statically linked (crt-static, still
# position-independent), so that no shared library is loaded at each start. An explicit --target
# keeps the flag away from the proc-macros and build scripts, which are built for the host.
build() {
  local host
  host=$(rustc -vV | sed -n 's/^host: //p')
  [[ -n $host ]] || die "cannot tell the host target from rustc -vV"
  say "cargo build --release --target $host (static)"
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --bin snapguard --target "$host"
  bin=$target_dir/$host/release/snapguard
  [[ -x $bin ]] || die "no binary at $bin"
}

# write_table NAME REF_NAME TITLE CSV [EXTRA_LINE...]: Markdown table of a hyperfine CSV export,
# each mean divided by REF_NAME's mean, with the CPU time (user + system, all threads) beside
# the wall time; printed and saved to $out_dir/NAME.md. With table_col
# (a header) and table_col_file (lines "command<TAB>value") set, one more column of values.
write_table() {
  local name=$1 ref=$2 title=$3 csv=$4
  shift 4
  local md=$out_dir/$name.md
  {
    printf '### %s\n\n' "$title"
    awk -F, -v ref="$ref" -v colname="${table_col:-}" -v colfile="${table_col_file:-}" '
      BEGIN {
        if (colfile != "")
          while ((getline line < colfile) > 0) { split(line, kv, "\t"); extra[kv[1]] = kv[2] }
      }
      NR == 1 { next }
      {
        cmd[NR] = $1; mean[NR] = $2 * 1000; sd[NR] = $3 * 1000; cpu[NR] = ($5 + $6) * 1000
        if ($1 == ref) base = $2 * 1000
      }
      END {
        if (!base) { print "reference command " ref " not in results" > "/dev/stderr"; exit 1 }
        head = "| command | mean (ms) | ± σ (ms) | CPU user+sys (ms) | time vs snapguard |"
        rule = "|---|---:|---:|---:|---:|"
        if (colname != "") { head = head " " colname " |"; rule = rule "---:|" }
        print head
        print rule
        for (i = 2; i <= NR; i++) {
          printf "| %s | %.2f | %.2f | %.2f | %.2f× |", cmd[i], mean[i], sd[i], cpu[i], mean[i] / base
          if (colname != "") printf " %s |", (cmd[i] in extra) ? extra[cmd[i]] : "?"
          printf "\n"
        }
      }' "$csv"
    printf '\n'
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
  } >"$md"
  cat "$md"
  say "saved $md"
}

# tool_loop BODY IMAGE...: the command hyperfine -N runs for a reference tool, one
# `sh -c 'for i in IMAGE...; do BODY; done >/dev/null 2>&1'` (one sh start for the loop;
# hyperfine -N splits the command line itself, so the script is single-quoted).
tool_loop() {
  local body=$1
  shift
  local script
  script="for i in $(printf '%q ' "$@"); do $body; done >/dev/null 2>&1"
  [[ $script != *"'"* ]] || die "image paths with a single quote: $*"
  printf "sh -c '%s'" "$script"
}

# check_loop CMD: run a reference loop once, as hyperfine will, and stop unless it exits 0
# (the loop's status is its last tool's): hyperfine -i would not notice a failing tool.
check_loop() {
  eval "$1" || die "reference command failed: $1"
}

machine_line() {
  printf '%s, %s cores, kernel %s, %s, snapguard %s (static build); %s warm-cache runs after %s warm-ups (hyperfine -N: no shell around snapguard; each loop is one sh -c, whose start is under 1 %% of the loop).' \
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

  local sg loop_dump loop_tune
  sg=$(printf '%q ' "$bin" scan --json "${imgs[@]}")
  # shellcheck disable=SC2016 # "$i" is the loop's own variable
  loop_dump=$(tool_loop 'dumpe2fs -h "$i"' "${imgs[@]}")
  # shellcheck disable=SC2016
  loop_tune=$(tool_loop 'tune2fs -l "$i"' "${imgs[@]}")
  check_loop "$loop_dump"
  check_loop "$loop_tune"

  say "hyperfine: $n images"
  mkdir -p "$out_dir"
  hyperfine -N -i --warmup "$WARMUP" --runs "$RUNS" --style basic \
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

  # The timed command scans all images in one process: its exit code is checked once too.
  local sg loop rc=0
  "$bin" scan --json "${imgs[@]}" >/dev/null || rc=$?
  ((rc <= 2)) || die "snapguard scan exited $rc on the XFS images"
  sg=$(printf '%q ' "$bin" scan --json "${imgs[@]}")
  # shellcheck disable=SC2016 # "$i" is the loop's own variable
  loop=$(tool_loop 'xfs_logprint -t "$i"' "${imgs[@]}")
  check_loop "$loop"
  say "hyperfine: $n images"
  mkdir -p "$out_dir"
  hyperfine -N -i --warmup "$WARMUP" --runs "$RUNS" --style basic \
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
  cleanups+=(freeze_cleanup)
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

# --- holders: holder scan of a busy mount vs fuser -vm and lsof ------------------------------
# One ext4 image (256 MiB, sparse, in $work) on our own loop device, mounted under $work, with
# one holder of each class of repair.md §1.2 (the 9 classes, in HOLDER_CLASSES order):
#   cwd             a process whose cwd is inside            (sh: cd DIR; exec sleep)
#   open file       a process with a file open for writing   (sh: exec 7>>FILE; exec sleep)
#   mmap            a process with a file mapped, its fd closed (python3, ctypes mmap)
#   exe             a copy of sleep run from the filesystem
#   nested mount    a tmpfs mounted below it
#   bind mount      a bind mount of it elsewhere (in $work)
#   other namespace a private mount namespace holding a copy (unshare -m --propagation private)
#   swap file       a swap file on it (swapon)
#   loop device     a loop device backed by a file on it
# plus HOLDERS_EXTRA (default 3000) sleeping processes that hold nothing, so the /proc walk is
# that of a busy machine. Each tool runs once with its output kept, and a class counts as found
# only when that output shows that very holder: the holder's pid with the matching access
# (fuser c, f/F, m, e; lsof cwd, a numbered fd, mem, txt; snapguard's blockers `kind` and
# `how`), or for the other classes the nested mount's or the bind mount's path, the namespace
# holder's pid, the swap file's path, the loop device or its backing file. Then the three are
# timed in one hyperfine run. `lsof +f -- M` and `lsof M` list the same here (M is a mount
# point); the table uses the form repair.md §1.2 names.
#
# Namespaces copy every mount of the machine and `snapguard repair` takes its tool-wide lock,
# so this holds the test suite's mount-namespace lock exclusively (as repair tests do): it waits
# for running tests, and tests wait for it.
HOLDER_CLASSES=("cwd" "open file" "mmap" "exe" "nested mount" "bind mount" "other namespace"
  "swap file" "loop device")

# holder_classes TOOL FILE KEY=VALUE...: "N<TAB>found, ...<TAB>missed, ..." for the holders of
# the keys (pids and paths, see bench_holders) that TOOL's output in FILE shows.
holder_classes() {
  python3 - "$@" "${HOLDER_CLASSES[@]/#/class=}" <<'PY'
import json, re, sys
tool, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
h = dict(a.split("=", 1) for a in args if not a.startswith("class="))
classes = [a[6:] for a in args if a.startswith("class=")]
text = open(path, errors="replace").read()
found = set()
def mentions(s):  # a path or device named as a whole word in the output
    return re.search(re.escape(s) + r"(?=$|[\s:,)])", text, re.M) is not None
if tool == "snapguard":
    for target in json.loads(text).get("targets", []):
        for b in target.get("blockers", []):
            kind, how, pid = b["kind"], b["how"], str(b.get("pid"))
            parts = how.split(", ")
            if kind == "process":
                if pid == h["cwd_pid"] and "cwd" in parts: found.add("cwd")
                if pid == h["fd_pid"] and any(re.fullmatch(r"fd \d+ " + re.escape(h["fd_path"]), p) for p in parts):
                    found.add("open file")
                if pid == h["map_pid"] and "maps " + h["map_path"] in parts: found.add("mmap")
                if pid == h["exe_pid"] and "exe" in parts: found.add("exe")
            elif kind == "submount" and how.startswith(h["nested"] + " "): found.add("nested mount")
            elif kind == "other-mount" and "mounted on " + h["bind"] + " " in how: found.add("bind mount")
            elif kind == "other-namespace" and pid == h["ns_pid"]: found.add("other namespace")
            elif kind == "swap" and "swap file " + h["swap"] + " " in how: found.add("swap file")
            elif kind == "loop" and how.startswith(h["loop_dev"] + " "): found.add("loop device")
else:
    for line in text.splitlines():
        if tool == "fuser":  # [NAME:] USER PID ACCESS COMMAND, ACCESS as in "..c.." or "F...m"
            m = re.search(r"(?:^|\s)(\d+)\s+([.cerfFmM]{5})\s", line)
            if not m: continue
            pid, acc = m.groups()
            marks = {"cwd": "c", "open file": "fF", "mmap": "m", "exe": "e"}
        else:  # lsof: COMMAND PID USER FD TYPE ...
            f = line.split()
            if len(f) < 5 or not f[1].isdigit(): continue
            pid, acc = f[1], f[3]
            acc = {"cwd": "c", "mem": "m", "txt": "e"}.get(acc, "f" if re.fullmatch(r"\d+[rwu]", acc) else "")
            marks = {"cwd": "c", "open file": "f", "mmap": "m", "exe": "e"}
        for cls, key in (("cwd", "cwd_pid"), ("open file", "fd_pid"), ("mmap", "map_pid"), ("exe", "exe_pid")):
            if pid == h[key] and any(c in acc for c in marks[cls]): found.add(cls)
        if pid == h["ns_pid"]: found.add("other namespace")
    for cls, key in (("nested mount", "nested"), ("bind mount", "bind"), ("swap file", "swap")):
        if mentions(h[key]): found.add(cls)
    if mentions(h["loop_dev"]) or mentions(h["loop_file"]): found.add("loop device")
print("%d\t%s\t%s" % (len(found), ", ".join(c for c in classes if c in found) or "none",
                      ", ".join(c for c in classes if c not in found) or "none"))
PY
}

# wait_for WHAT CMD...: until CMD succeeds, at most 10 s.
wait_for() {
  local what=$1 i
  shift
  for ((i = 0; i < 200; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  die "holders: $what not in place after 10 s"
}
link_is() { [[ $(readlink "$1" 2>/dev/null) == "$2" ]]; }
other_mount_ns() {
  [[ $(readlink "/proc/$1/ns/mnt" 2>/dev/null) != "$(readlink /proc/$$/ns/mnt)" ]]
}

# detach_own_loop DEV FILE: losetup -d DEV only when FILE is its backing file.
detach_own_loop() {
  [[ -n $1 && $(cat "/sys/block/${1#/dev/}/loop/backing_file" 2>/dev/null) == "$2" ]] || return 0
  losetup -d "$1"
}

# Only what bench_holders made: its processes (by pid), its swap file, its loop devices, its
# mounts, the lock. Runs from the EXIT trap too, so every step may find nothing to do.
holders_cleanup() {
  if ((${#h_pids[@]} + ${#h_extra[@]})); then
    kill "${h_pids[@]}" "${h_extra[@]}" 2>/dev/null
    wait "${h_pids[@]}" "${h_extra[@]}" 2>/dev/null
  fi
  h_pids=() h_extra=()
  if [[ -n $h_swap ]]; then swapoff "$h_swap"; fi
  h_swap=
  detach_own_loop "$h_inner" "$h_mnt/inner.img"
  h_inner=
  local m i
  for m in "$h_bind" "$h_mnt/nested" "$h_mnt"; do
    for ((i = 0; i < 10; i++)); do
      mountpoint -q "$m" 2>/dev/null || break
      umount "$m" && break
      sleep 0.2
    done
  done
  detach_own_loop "$h_dev" "$h_img"
  h_dev=
  if [[ -n $h_lock ]]; then exec {h_lock}>&-; fi
  h_lock=
}

# spawn_holder VAR CMD...: CMD in the background, without the lock's fd; its pid in VAR.
spawn_holder() {
  local var=$1
  shift
  "$@" </dev/null >/dev/null 2>&1 {h_lock}>&- &
  h_pids+=("$!")
  printf -v "$var" %s "$!"
}

bench_holders() {
  ((EUID == 0)) || die "the holders benchmark needs root (loop devices, mounts, swapon, unshare)"
  need e2fsprogs mkfs.ext4
  need util-linux losetup mountpoint unshare swapon mkswap flock
  need psmisc fuser
  need lsof lsof
  need python3 python3
  local extra=${HOLDERS_EXTRA:-3000} i
  # Globals, not locals: the EXIT trap may run holders_cleanup after this function returned.
  h_img=$work/holders.img h_mnt=$work/holders-mnt h_bind=$work/holders-bind
  h_dev='' h_inner='' h_swap='' h_lock='' h_pids=() h_extra=()
  cleanups+=(holders_cleanup)

  local lock=${TMPDIR:-/tmp}/snapguard-mount-namespace-tests.lock
  exec {h_lock}>>"$lock"
  say "holders: waiting for the mount-namespace test lock ($lock)"
  flock -x -w 600 "$h_lock" || die "the mount-namespace test lock is still taken after 10 min"

  truncate -s 256M "$h_img"
  mkfs.ext4 -q -F "$h_img"
  mkdir -p "$h_mnt" "$h_bind"
  h_dev=$(losetup --find --show "$h_img")
  mount "$h_dev" "$h_mnt"
  mkdir "$h_mnt/cwd" "$h_mnt/nested"
  head -c 1M /dev/zero >"$h_mnt/mapped.dat"
  cp /bin/sleep "$h_mnt/held-sleep"

  say "holders: one holder of each of the ${#HOLDER_CLASSES[@]} classes on $h_mnt"
  local p_cwd p_fd p_map p_exe p_ns
  # shellcheck disable=SC2016 # $1 is the inner shell's
  spawn_holder p_cwd sh -c 'cd "$1" && exec sleep 3600' sh "$h_mnt/cwd"
  # shellcheck disable=SC2016
  spawn_holder p_fd sh -c 'exec 7>>"$1"; exec sleep 3600' sh "$h_mnt/open-file.log"
  spawn_holder p_map python3 -c '
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDONLY)
addr = libc.mmap(None, 1 << 20, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
os.close(fd)  # only the mapping holds the file now
if addr in (None, ctypes.c_void_p(-1).value): sys.exit("mmap failed")
time.sleep(3600)' "$h_mnt/mapped.dat"
  spawn_holder p_exe "$h_mnt/held-sleep" 3600
  mount -t tmpfs -o size=1m tmpfs "$h_mnt/nested"
  mount --bind "$h_mnt" "$h_bind"
  spawn_holder p_ns unshare -m --propagation private sleep 3600
  dd if=/dev/zero of="$h_mnt/swapfile" bs=1M count=16 status=none
  chmod 600 "$h_mnt/swapfile"
  mkswap -q "$h_mnt/swapfile" >/dev/null
  swapon "$h_mnt/swapfile" || die "swapon $h_mnt/swapfile failed"
  h_swap=$h_mnt/swapfile
  truncate -s 8M "$h_mnt/inner.img"
  h_inner=$(losetup --find --show "$h_mnt/inner.img")

  wait_for "the cwd holder" link_is "/proc/$p_cwd/cwd" "$h_mnt/cwd"
  wait_for "the open file" link_is "/proc/$p_fd/fd/7" "$h_mnt/open-file.log"
  wait_for "the mapping" grep -qF "$h_mnt/mapped.dat" "/proc/$p_map/maps"
  local fd
  for fd in "/proc/$p_map/fd/"*; do
    [[ $(readlink "$fd") != "$h_mnt/mapped.dat" ]] || die "the mmap holder still has the file open"
  done
  wait_for "the exe holder" link_is "/proc/$p_exe/exe" "$h_mnt/held-sleep"
  wait_for "the other namespace" other_mount_ns "$p_ns"

  say "holders: $extra extra sleeping processes"
  for ((i = 0; i < extra; i++)); do
    sleep 3600 >/dev/null 2>&1 {h_lock}>&- &
    h_extra+=("$!")
  done
  local nproc_now
  nproc_now=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)

  local keys=("cwd_pid=$p_cwd" "fd_pid=$p_fd" "fd_path=$h_mnt/open-file.log" "map_pid=$p_map"
    "map_path=$h_mnt/mapped.dat" "exe_pid=$p_exe" "nested=$h_mnt/nested" "bind=$h_bind"
    "ns_pid=$p_ns" "swap=$h_mnt/swapfile" "loop_dev=$h_inner" "loop_file=$h_mnt/inner.img")
  local sg_name="snapguard repair --dry-run --force --trust-fence --json M"
  local fu_name="fuser -vm M" ls_name="lsof +f -- M"
  local sg fu ls rc=0
  sg="$(printf '%q ' "$bin" repair --dry-run --force --trust-fence --json "$h_mnt")>/dev/null; [ \$? -eq 8 ]"
  fu="fuser -vm $(printf %q "$h_mnt") >/dev/null 2>&1"
  ls="lsof +f -- $(printf %q "$h_mnt") >/dev/null 2>&1"

  # One checked run of each, outputs kept: snapguard must refuse (exit 8: in use), fuser and
  # lsof must find something (exit 0).
  say "holders: what each tool shows"
  "$bin" repair --dry-run --force --trust-fence --json "$h_mnt" >"$work/holders-snapguard.out" ||
    rc=$?
  ((rc == 8)) || die "snapguard repair --dry-run exited $rc, expected 8 (refused: in use)"
  fuser -vm "$h_mnt" >"$work/holders-fuser.out" 2>&1 || die "fuser -vm found nothing"
  lsof +f -- "$h_mnt" >"$work/holders-lsof.out" 2>/dev/null || die "lsof +f -- found nothing"
  lsof "$h_mnt" >"$work/holders-lsof-plain.out" 2>/dev/null || true
  local tool name result count found missed col_file=$work/holders.classes notes=() plain
  : >"$col_file"
  for tool in snapguard:"$sg_name" fuser:"$fu_name" lsof:"$ls_name"; do
    name=${tool#*:} tool=${tool%%:*}
    result=$(holder_classes "$tool" "$work/holders-$tool.out" "${keys[@]}")
    IFS=$'\t' read -r count found missed <<<"$result"
    printf '%s\t%s\n' "$name" "$count" >>"$col_file"
    notes+=("${name%% M}: shows ${found}; misses ${missed}.")
    say "${name%% M}: $count of ${#HOLDER_CLASSES[@]} (shows $found; misses $missed)"
  done
  plain=$(holder_classes lsof "$work/holders-lsof-plain.out" "${keys[@]}")
  if [[ $plain == "$result" ]]; then
    notes+=("\`lsof M\` (without +f --) shows the same.")
  else
    notes+=("\`lsof M\` (without +f --) shows ${plain%%$'\t'*}: $(cut -f2 <<<"$plain").")
  fi
  local classes discover_ms
  classes=$(printf '%s, ' "${HOLDER_CLASSES[@]}")
  discover_ms=$(python3 -c 'import json, sys
print(sum(s["duration_ms"] for s in json.load(open(sys.argv[1]))["steps"] if s["step"] == "discover"))' \
    "$work/holders-snapguard.out")
  notes+=("snapguard's discover step (mountinfo of every namespace, /proc of every process, swaps,
loop devices) took $discover_ms ms of its checked run.")

  say "hyperfine: holder scan among $nproc_now processes"
  mkdir -p "$out_dir"
  hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic \
    --export-json "$out_dir/holders.json" --export-csv "$work/holders.csv" \
    --command-name "$sg_name" "$sg" \
    --command-name "$fu_name" "$fu" \
    --command-name "$ls_name" "$ls"

  table_col="holder classes shown (of ${#HOLDER_CLASSES[@]})" table_col_file=$col_file \
    write_table holders "$sg_name" \
    "holders: holder scan of a busy ext4 mount, one holder of each class, among $nproc_now processes ($extra extra sleepers)" \
    "$work/holders.csv" \
    "Holder classes (repair.md §1.2): ${classes%, }; one holder of each. A class counts when the tool's output shows that holder (its pid with the matching access, or the mount, swap file or loop device named)." \
    "${notes[@]}" \
    "$(machine_line) $(fuser -V 2>&1 | head -n1), lsof $(lsof -v 2>&1 | awk '/revision:/ { print $2; exit }')."
  holders_cleanup || true
}

# --- main ------------------------------------------------------------------------------------
# The EXIT trap: every registered cleanup, last first, then the scratch dir (never crossing into
# a mount that is still there). Ctrl-C and SIGTERM exit through it; they are ignored meanwhile.
run_cleanups() {
  trap '' INT TERM HUP
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
    "${cleanups[i]}" || true
  done
  cleanups=()
  rm -rf --one-file-system "$work"
}

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
  work=$(realpath "$work")
  cleanups=()
  trap run_cleanups EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  for entry in "${selected[@]}"; do
    "${entry#*:}"
  done
}

main "$@"

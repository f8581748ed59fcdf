#!/usr/bin/env bash
# Install snapguard: the binary, the systemd units, the example configuration, man pages,
# bash/zsh/fish completions, and the Azure VM backup pre/post scripts and qemu-ga fsfreeze
# hook (under PREFIX/share/snapguard/{azure,qemu-ga}; never into /etc/azure or /etc/qemu). Every file and directory it creates is listed in a manifest, so
# --uninstall removes exactly those (a file changed since, such as an edited configuration,
# is kept and named).
#
#   scripts/install.sh [--prefix DIR] [--binary PATH] [--unitdir DIR]
#   scripts/install.sh [--prefix DIR] --uninstall
#
# Options:
#   --prefix DIR    installation prefix (default /usr/local): DIR/bin/snapguard,
#                   DIR/share/man/man1, DIR/share/{bash-completion,zsh,fish}; the units'
#                   ExecStart= paths name DIR/bin/snapguard
#   --binary PATH   install this binary instead of building one (cargo build --release --locked)
#   --unitdir DIR   where the systemd units go (default: DIR/lib/systemd/system for the
#                   prefixes systemd searches, /usr and /usr/local; else /etc/systemd/system)
#   --uninstall     remove what an earlier run with the same --prefix and DESTDIR installed
#   -h, --help      this text
#
# Environment:
#   DESTDIR         stage everything under this directory (packaging, tests; created when
#                   missing); nothing outside it is touched, and the paths inside files stay
#                   the final ones
#
# The configuration lives in /etc/snapguard whatever the prefix (snapguard reads
# /etc/snapguard/snapguard.toml): the documented example is installed as
# snapguard.toml.example, and copied to snapguard.toml only when that file does not exist
# (an existing configuration is never overwritten). snapguard refuses a configuration that is
# not root's or is writable by group or others: run the install as root, or chown the staged
# files to root when packaging.
#
# Exit status: 0 done, 1 failed (the message says why), 2 bad usage.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}
bad_usage() {
  printf 'install.sh: %s (see --help)\n' "$*" >&2
  exit 2
}

prefix=/usr/local
binary=
unitdir=
uninstall=0
while (($#)); do
  case $1 in
    --prefix)
      (($# >= 2)) || bad_usage "--prefix needs a directory"
      prefix=$2
      shift 2
      ;;
    --prefix=*)
      prefix=${1#*=}
      shift
      ;;
    --binary)
      (($# >= 2)) || bad_usage "--binary needs a path"
      binary=$2
      shift 2
      ;;
    --binary=*)
      binary=${1#*=}
      shift
      ;;
    --unitdir)
      (($# >= 2)) || bad_usage "--unitdir needs a directory"
      unitdir=$2
      shift 2
      ;;
    --unitdir=*)
      unitdir=${1#*=}
      shift
      ;;
    --uninstall)
      uninstall=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) bad_usage "unknown argument '$1'" ;;
  esac
done

[[ $prefix == /* ]] || bad_usage "--prefix must be an absolute path, not '$prefix'"
[[ $prefix != *[[:space:]\|]* ]] || bad_usage "--prefix must not contain blanks or '|'"
prefix=${prefix%/}
[[ -n $prefix ]] || prefix=/
if [[ -z $unitdir ]]; then
  case $prefix in
    /usr | /usr/local) unitdir=$prefix/lib/systemd/system ;;
    *) unitdir=/etc/systemd/system ;;
  esac
fi
[[ $unitdir == /* ]] || bad_usage "--unitdir must be an absolute path, not '$unitdir'"
destdir=${DESTDIR:-}
destdir=${destdir%/}
if [[ -n $destdir ]]; then
  # As with `make install DESTDIR=...`, the staging directory need not exist yet (an
  # uninstall needs its manifest, so there it must).
  if ((!uninstall)) && [[ ! -d $destdir ]]; then
    mkdir -p -- "$destdir" || die "cannot create DESTDIR '$DESTDIR'"
  fi
  if [[ $destdir != /* ]]; then
    destdir=$(cd -- "$destdir" && pwd) || die "DESTDIR '$DESTDIR' does not exist"
  fi
fi

bindir=$prefix/bin
mandir=$prefix/share/man/man1
bashdir=$prefix/share/bash-completion/completions
zshdir=$prefix/share/zsh/site-functions
fishdir=$prefix/share/fish/vendor_completions.d
confdir=/etc/snapguard
manifest_dir=$prefix/share/snapguard
manifest=$manifest_dir/install-manifest

# --- uninstall -------------------------------------------------------------------------------
# The manifest: "f SHA256 PATH" for a file, "d - PATH" for a directory this install created,
# paths without DESTDIR, in creation order.
if ((uninstall)); then
  [[ -f $destdir$manifest ]] || die "no manifest at $destdir$manifest: nothing installed with this --prefix and DESTDIR"
  dirs=()
  kept=0
  while read -r kind sum path; do
    case $kind in
      f)
        target=$destdir$path
        if [[ ! -e $target && ! -L $target ]]; then
          continue
        fi
        if [[ $(sha256sum <"$target" | cut -d' ' -f1) != "$sum" ]]; then
          printf 'kept %s: changed since it was installed\n' "$target"
          kept=1
          continue
        fi
        rm -f -- "$target"
        printf 'removed %s\n' "$target"
        ;;
      d) dirs+=("$path") ;;
      *) die "$destdir$manifest: unknown line '$kind $sum $path'" ;;
    esac
  done <"$destdir$manifest"
  rm -f -- "$destdir$manifest"
  # Deepest first; only when empty (what someone else put there stays, with its directory).
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    rmdir -- "$destdir${dirs[i]}" 2>/dev/null || true
  done
  if ((kept)); then
    echo "uninstalled; changed files were kept (listed above)"
  else
    echo "uninstalled"
  fi
  exit 0
fi

# --- install ---------------------------------------------------------------------------------
if [[ -z $binary ]]; then
  command -v cargo >/dev/null 2>&1 || die "no cargo: install Rust, or give --binary PATH"
  (cd "$repo" && cargo build --release --locked) || die "cargo build failed"
  binary=$repo/target/release/snapguard
fi
[[ -f $binary && -x $binary ]] || die "'$binary' is not an executable file"
"$binary" --version >/dev/null 2>&1 || die "'$binary' does not run"

stage=$(mktemp -d)
trap 'rm -rf -- "$stage"' EXIT

# The manifest of an earlier install is kept and added to: a second install still lets
# --uninstall remove everything.
entries=$stage/manifest
if [[ -f $destdir$manifest ]]; then
  cp -- "$destdir$manifest" "$entries"
else
  : >"$entries"
fi
note_entry() {
  local line=$1
  grep -qxF -- "$line" "$entries" || printf '%s\n' "$line" >>"$entries"
}
# make_dir DIR: create DIR (and missing parents) under DESTDIR, recording each one created.
make_dir() {
  local dir=$1 parts=() d
  while [[ $dir != / && ! -d $destdir$dir ]]; do
    parts=("$dir" "${parts[@]}")
    dir=$(dirname "$dir")
  done
  for d in "${parts[@]}"; do
    mkdir -m 0755 -- "$destdir$d"
    note_entry "d - $d"
  done
}
# put SRC DEST MODE: install one file, recording its checksum.
put() {
  local src=$1 dest=$2 mode=$3
  make_dir "$(dirname "$dest")"
  # A reinstall replaces the file: drop its old line first.
  awk -v p="$dest" '!($1 == "f" && $3 == p)' "$entries" >"$entries.new"
  mv -- "$entries.new" "$entries"
  install -m "$mode" -- "$src" "$destdir$dest"
  note_entry "f $(sha256sum <"$src" | cut -d' ' -f1) $dest"
  printf 'installed %s\n' "$destdir$dest"
}

put "$binary" "$bindir/snapguard" 0755

# Units: ExecStart= and friends name the binary under this prefix.
for unit in "$repo"/systemd/*.service "$repo"/systemd/*.timer; do
  name=$(basename "$unit")
  sed "s|/usr/local/bin/snapguard|$bindir/snapguard|g" "$unit" >"$stage/$name"
  put "$stage/$name" "$unitdir/$name" 0644
done
for example in "$repo"/systemd/examples/*/*.conf; do
  rel=${example#"$repo"/systemd/examples/}
  mkdir -p -- "$stage/examples/$(dirname "$rel")"
  sed "s|/usr/local/bin/snapguard|$bindir/snapguard|g" "$example" >"$stage/examples/$rel"
  put "$stage/examples/$rel" "$manifest_dir/examples/$rel" 0644
done

# Azure VMSnapshot pre/post scripts with a sample plugin configuration, and the qemu-ga
# fsfreeze hook: under PREFIX/share/snapguard only. Nothing is written to /etc/azure or
# /etc/qemu (enabling them is the admin's step, see README.md). The scripts name this
# prefix's binary; the sample names this prefix's scripts. The Azure extension refuses scripts
# that are not root-only (mode 0700) and a configuration that is (0600).
mkdir -p -- "$stage/azure" "$stage/qemu-ga"
for script in snapguard-pre.sh snapguard-post.sh; do
  sed "s|/usr/local/bin/snapguard|$bindir/snapguard|g; s|/usr/local/share/snapguard|$manifest_dir|g" \
    "$repo/scripts/azure/$script" >"$stage/azure/$script"
  put "$stage/azure/$script" "$manifest_dir/azure/$script" 0700
done
sed "s|/usr/local/share/snapguard|$manifest_dir|g" \
  "$repo/scripts/azure/VMSnapshotScriptPluginConfig.json" >"$stage/azure/VMSnapshotScriptPluginConfig.json"
put "$stage/azure/VMSnapshotScriptPluginConfig.json" "$manifest_dir/azure/VMSnapshotScriptPluginConfig.json" 0600
sed "s|/usr/local/bin/snapguard|$bindir/snapguard|g" "$repo/scripts/qemu-ga/snapguard" >"$stage/qemu-ga/snapguard"
put "$stage/qemu-ga/snapguard" "$manifest_dir/qemu-ga/snapguard" 0755

# Configuration: the example always; the configuration only when there is none.
put "$repo/config/snapguard.toml.example" "$confdir/snapguard.toml.example" 0644
if [[ -e $destdir$confdir/snapguard.toml ]]; then
  printf 'kept %s (an existing configuration is never overwritten)\n' "$destdir$confdir/snapguard.toml"
else
  put "$repo/config/snapguard.toml.example" "$confdir/snapguard.toml" 0644
fi

# Man pages and completions, from the binary's own command-line definition.
mkdir -p -- "$stage/man"
"$binary" generate man "$stage/man" >/dev/null || die "snapguard generate man failed"
for page in "$stage"/man/*.1; do
  put "$page" "$mandir/$(basename "$page")" 0644
done
"$binary" generate completions bash >"$stage/snapguard.bash"
"$binary" generate completions zsh >"$stage/_snapguard"
"$binary" generate completions fish >"$stage/snapguard.fish"
put "$stage/snapguard.bash" "$bashdir/snapguard" 0644
put "$stage/_snapguard" "$zshdir/_snapguard" 0644
put "$stage/snapguard.fish" "$fishdir/snapguard.fish" 0644

make_dir "$manifest_dir"
install -m 0644 -- "$entries" "$destdir$manifest"
printf 'manifest %s (scripts/install.sh --uninstall removes what it lists)\n' "$destdir$manifest"
if [[ -z $destdir ]]; then
  echo "next: systemctl daemon-reload; edit $confdir/snapguard.toml ([repair] window for snapguard-repair.timer)"
fi

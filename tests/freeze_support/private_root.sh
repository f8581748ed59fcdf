# Run by tests/freeze_support/private_root.rs as
#   unshare --mount --propagation private /bin/sh -c "$(cat this)" sh enter SNAPGUARD-ARGS...
#   /bin/sh -c "$(cat this)" sh check MOUNTINFO-FILE        (the safety check alone)
# with its parameters in SG_* environment variables (set by private_root.rs:
# `PrivateRoot::run_with_policy` and `run_safety_check`).
#
# `enter` builds a private mount namespace whose only block-backed mounts are the test's own
# loop devices, pivots into it, detaches the old root, checks /proc/self/mountinfo and only then
# execs /snapguard. Every step is checked: any failure exits 98 (setup failed) or 97 (refused)
# before snapguard starts; the line "private-root: starting /snapguard" marks that it did.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { printf 'private-root: %s\n' "$*" >&2; }
refuse() {
    say "REFUSED: $*; snapguard not started"
    exit 97
}
fail() {
    say "setup failed: $*; snapguard not started"
    exit 98
}
step() { "$@" || fail "$*"; }

# check_mounts FILE: accept the mount table only if every mount in it is one of ours.
#  * a block-backed mount (major not 0, or btrfs: what snapguard's default set freezes) must be
#    one of the test's filesystems (SG_ALLOWED, "major:minor" words);
#  * any other mount must be a fresh proc, sysfs or tmpfs (nothing else was mounted here);
#  * nothing may have the host root's major:minor (SG_HOST_ROOT_MAJMIN);
#  * "/" must be the test root (SG_ROOT_MAJMIN): proof that pivot_root happened.
# The lines are echoed to stderr between markers, so the test sees exactly what was checked.
check_mounts() {
    file=$1
    [ -n "$SG_ALLOWED" ] || refuse "no test filesystem listed in SG_ALLOWED"
    [ -n "$SG_ROOT_MAJMIN" ] || refuse "SG_ROOT_MAJMIN is empty"
    [ -n "$SG_HOST_ROOT_MAJMIN" ] || refuse "SG_HOST_ROOT_MAJMIN is empty"
    case " $SG_ALLOWED " in
    *" $SG_HOST_ROOT_MAJMIN "*) refuse "the host root $SG_HOST_ROOT_MAJMIN is listed as a test filesystem" ;;
    esac
    [ -r "$file" ] || refuse "cannot read $file"
    count=0
    root_seen=no
    printf '%s\n' '--- mountinfo checked' >&2
    while IFS=' ' read -r _id _parent majmin _root mpoint rest; do
        printf '%s %s %s %s %s %s\n' "$_id" "$_parent" "$majmin" "$_root" "$mpoint" "$rest" >&2
        count=$((count + 1))
        after=${rest#* - }
        [ "$after" != "$rest" ] || refuse "mountinfo line $count has no ' - ' separator"
        fstype=${after%% *}
        case $majmin in
        [0-9]*:[0-9]*) ;;
        *) refuse "mountinfo line $count: bad major:minor '$majmin'" ;;
        esac
        major=${majmin%%:*}
        ours=no
        case " $SG_ALLOWED " in
        *" $majmin "*) ours=yes ;;
        esac
        [ "$majmin" != "$SG_HOST_ROOT_MAJMIN" ] ||
            refuse "$mpoint is the host's root filesystem ($fstype $majmin)"
        if [ "$major" != 0 ] || [ "$fstype" = btrfs ]; then
            [ "$ours" = yes ] ||
                refuse "$mpoint is block-backed ($fstype $majmin) and not a test filesystem"
        fi
        case $fstype in
        proc | sysfs | tmpfs) ;;
        *) [ "$ours" = yes ] || refuse "$mpoint ($fstype $majmin) was not mounted by the test" ;;
        esac
        if [ "$mpoint" = / ]; then
            [ "$majmin" = "$SG_ROOT_MAJMIN" ] ||
                refuse "/ is $fstype $majmin, not the test root $SG_ROOT_MAJMIN (no pivot_root?)"
            root_seen=yes
        fi
    done <"$file"
    printf '%s\n' '--- end of mountinfo' >&2
    [ "$count" -gt 0 ] || refuse "$file is empty"
    [ "$root_seen" = yes ] || refuse "no / in $file"
}

mode=${1:-}
[ $# -gt 0 ] && shift
case $mode in
check)
    check_mounts "$1"
    say "mount table accepted"
    exit 0
    ;;
enter) ;;
*) fail "unknown mode '$mode'" ;;
esac

# 1. Only ever work in a mount namespace of our own: a pivot_root in the host's namespace
#    would move the host's root.
ns=$(readlink /proc/self/ns/mnt) || fail "readlink /proc/self/ns/mnt"
[ -n "$ns" ] || fail "no mount namespace id"
[ "$ns" != "$SG_HOST_MNT_NS" ] || refuse "still in the test's mount namespace $ns"
step mount --make-rprivate /

new=$SG_NEW_ROOT
# 2. Mounts made in creation order, which is mountinfo order (Linux >= 6.8 lists mounts by
#    their unique id; a move keeps it). /data first: the root superblock must not come last
#    by accident of order. With SG_LAYOUT=second-root-mount-first a whole-filesystem mount of
#    the root superblock is made (and moved to /mnt/top) before the mount that becomes /.
if [ -n "$SG_DATA_DEV" ]; then
    step mount -t "$SG_DATA_FSTYPE" "$SG_DATA_DEV" "$SG_WORK/stage-data"
fi
case $SG_LAYOUT in
plain) ;;
second-root-mount-first) step mount -t "$SG_ROOT_FSTYPE" "$SG_ROOT_DEV" "$SG_WORK/stage-top" ;;
*) fail "unknown layout '$SG_LAYOUT'" ;;
esac
step mount -t "$SG_ROOT_FSTYPE" "$SG_ROOT_DEV" "$new"
[ -x "$new/snapguard" ] || fail "$new/snapguard is missing: the root mount did not happen"
if [ -n "$SG_DATA_DEV" ]; then
    step mount --move "$SG_WORK/stage-data" "$new/data"
fi
if [ "$SG_LAYOUT" = second-root-mount-first ]; then
    step mount --move "$SG_WORK/stage-top" "$new/mnt/top"
fi
step mount -t proc proc "$new/proc"
step mount -t sysfs sysfs "$new/sys"
step mount -t tmpfs -o mode=0755,size=1m tmpfs "$new/dev"
step mknod -m 0666 "$new/dev/null" c 1 3
step mknod -m 0666 "$new/dev/zero" c 1 5
step mknod -m 0666 "$new/dev/urandom" c 1 9
for node in $SG_LOOP_NODES; do # loopN:MAJOR:MINOR
    name=${node%%:*}
    majmin=${node#*:}
    step mknod -m 0600 "$new/dev/$name" b "${majmin%%:*}" "${majmin#*:}"
done
step mount -t tmpfs -o mode=0755,size=8m tmpfs "$new/run"
# /tmp matters beyond scratch space: the loop images' paths are under /tmp, and without a /tmp
# mount snapguard would place them on `/` and order the freeze by that instead of by `/` last.
step mount -t tmpfs -o mode=1777,size=8m tmpfs "$new/tmp"

# 3. Into the test root.
step cd "$new"
step pivot_root . .old-root
step cd /
# Lazy unmount of the OLD root. This is this private namespace's own copy of the host's mount
# tree (unshare copied it): detaching it here unmounts nothing on the host, whose mounts stay
# as they are. After it, only the test's filesystems are left in this namespace.
step umount -l /.old-root

# 4. The hard safety check, on the table snapguard itself will read.
check_mounts /proc/self/mountinfo
say "starting /snapguard"
exec /snapguard "$@"

//! `snapguard repair --stop-units` (privileged, loop-mounted ext4 the tests make, a holder
//! process moved into a cgroup named like a systemd service, `sgtest-PID.service`, so that
//! `/proc/PID/cgroup` names a unit as it does under systemd):
//! * systemd is not PID 1 here: `--stop-units` refuses in one line (exit 8, nothing changed)
//!   and names `--terminate-holders`; without it the refusal suggests `--stop-units`;
//! * the systemctl path, in a private mount namespace where `/run/systemd/system` exists and a
//!   fake `systemctl` records its arguments: the holder's service is stopped (recorded first),
//!   the `.mount` unit unmounts, the mount comes back through mount(2) (no unit file), the
//!   service is started again; and after a crash the next run's rollback starts it again.
//!
//! Each test holds `common::mount_namespace_turn(true)` (it runs repair; one also creates a
//! mount namespace).

mod common;

use common::{LoopDevice, Mount, TestDir, fixtures, require_root};
use serde_json::Value;
use snapguard::mount::table::MountTable;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const EXT4_OPTS: &str = "noatime,nodev,nosuid";

/// The cgroup v2 mount (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`), if any.
fn cgroup2_root() -> Option<PathBuf> {
    let table = MountTable::from_mountinfo(&fs::read("/proc/self/mountinfo").ok()?).ok()?;
    table
        .entries()
        .iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| m.mount_point.clone())
}

/// A holder (`sleep` with its cwd in `dir`) in the cgroup `sgtest-PID.service`; killed,
/// reaped and its cgroup removed on drop (only this pid, only this cgroup).
struct UnitHolder {
    child: Child,
    cgroup: PathBuf,
    unit: String,
}

impl UnitHolder {
    fn start(cgroup_root: &Path, dir: &Path) -> Self {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("cd '{}' && exec sleep 120", dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the holder");
        let unit = format!("sgtest-{}.service", child.id());
        let cgroup = cgroup_root.join(&unit);
        let holder = UnitHolder {
            child,
            cgroup,
            unit,
        };
        fs::create_dir(&holder.cgroup).expect("create the test cgroup");
        fs::write(
            holder.cgroup.join("cgroup.procs"),
            holder.child.id().to_string(),
        )
        .expect("move the holder into it");
        let start = Instant::now();
        while !fs::read_to_string(format!("/proc/{}/cgroup", holder.child.id()))
            .unwrap_or_default()
            .contains(&holder.unit)
            || !fs::read_link(format!("/proc/{}/cwd", holder.child.id())).is_ok_and(|c| c == dir)
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "holder not ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        holder
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for UnitHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir(&self.cgroup);
    }
}

/// Skip (or fail with SNAPGUARD_REQUIRE_PRIVILEGED=1) when the premise does not hold.
fn premise(test: &str) -> Option<PathBuf> {
    if !require_root(test) {
        return None;
    }
    let why = if Path::new("/run/systemd/system").is_dir() {
        "systemd is PID 1 on this machine (the test is for a machine without it)"
    } else {
        match cgroup2_root() {
            Some(root) => return Some(root),
            None => "no cgroup2 mount to name a holder's unit",
        }
    };
    common::skip(test, why);
    None
}

fn mount_line(dir: &Path) -> Option<(String, String)> {
    MountTable::from_mountinfo(&fs::read("/proc/self/mountinfo").unwrap())
        .unwrap()
        .by_mount_point(dir)
        .map(|m| (m.mount_options.clone(), m.super_options.clone()))
}

/// `snapguard repair --json --yes --trust-fence --backup-dir DIR/backup ARGS... TARGET`.
fn repair(dir: &TestDir, args: &[&str], target: &Path) -> (i32, Value, String) {
    let out = common::snapguard()
        .args(["repair", "--json", "--yes", "--trust-fence", "--backup-dir"])
        .arg(dir.join("backup"))
        .args(args)
        .arg(target)
        .timeout(Duration::from_secs(180))
        .output()
        .expect("spawn snapguard");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked at"), "{stderr}");
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    (out.status.code().expect("exit code"), doc, stderr)
}

/// The `repair:` problem lines on stderr (log lines start otherwise).
fn problem_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("repair:") || l.starts_with("snapguard: repair"))
        .collect()
}

#[test]
fn stop_units_without_systemd_refuses_in_one_line_and_changes_nothing() {
    let Some(cgroup_root) =
        premise("stop_units_without_systemd_refuses_in_one_line_and_changes_nothing")
    else {
        return;
    };
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-units-refuse");
    let img = fixtures::mkfs(&dir, "u.img", fixtures::Kind::Ext4, 4096, &[], 32 * MIB);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("u");
    let m = Mount::new(lo.dev(), &mnt, Some(EXT4_OPTS));
    fs::write(mnt.join("data"), b"kept").unwrap();
    let before = mount_line(&mnt).unwrap();
    let mut holder = UnitHolder::start(&cgroup_root, &mnt);

    // Without --stop-units: in use, and the hint names --stop-units for a service.
    let (code, doc, stderr) = repair(&dir, &["--force"], &mnt);
    let t = &doc["targets"][0];
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "refused");
    let blocker = t["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "process")
        .unwrap_or_else(|| panic!("the holder is listed: {doc:#}"));
    assert_eq!(blocker["unit"], holder.unit.as_str(), "{doc:#}");
    assert!(
        t["message"].as_str().unwrap().contains("--stop-units"),
        "{doc:#}"
    );

    // --stop-units (alone, or with --terminate-holders): systemd is not running, one line.
    for args in [
        &["--force", "--stop-units"][..],
        &["--force", "--stop-units", "--terminate-holders"][..],
    ] {
        let (code, doc, stderr) = repair(&dir, args, &mnt);
        let t = &doc["targets"][0];
        assert_eq!(code, 8, "{args:?}: {doc:#}\n{stderr}");
        assert_eq!(t["outcome"], "refused");
        let lines = problem_lines(&stderr);
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(
            lines[0].contains("systemd is not running")
                && lines[0].contains(&holder.unit)
                && lines[0].contains("--terminate-holders")
                && lines[0].contains("nothing was changed"),
            "{}",
            lines[0]
        );
        assert!(
            t["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["step"] == "assess" || s["step"] == "discover"),
            "nothing carried out: {doc:#}"
        );
        assert!(holder.alive(), "the holder was not touched");
        assert_eq!(
            mount_line(&mnt).as_ref(),
            Some(&before),
            "mounted as before"
        );
    }
    assert_eq!(fs::read(mnt.join("data")).unwrap(), b"kept");
    drop(holder);
    drop(m);
}

/// The script run inside `unshare -m --propagation private`: /run and /usr/local/sbin are
/// private tmpfs there, `/run/systemd/system` exists (systemd "is PID 1" for snapguard), and
/// the `systemctl` found first in snapguard's fixed PATH is a fake that records its arguments.
///
/// The fake stands in ONLY because the real systemd cannot run on this machine: it stops the
/// holder's "service" by ending the processes of its cgroup and the `.mount` unit by
/// unmounting, as systemd would; starting succeeds and is recorded.
const NAMESPACE_SCRIPT: &str = r#"
set -u
dev=$1 mnt=$2 out=$3 exe=$4 backup=$5 cgroot=$6
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /usr/local/sbin
mkdir -p /run/systemd/system
cat > /usr/local/sbin/systemctl <<EOF
#!/bin/sh
echo "\$*" >> $out/systemctl.log
case "\$1 \$3" in
  "stop "*.service)
    for p in \$(cat "$cgroot/\$3/cgroup.procs"); do kill \$p; done
    while [ -n "\$(cat "$cgroot/\$3/cgroup.procs")" ]; do sleep 0.05; done ;;
  "stop "*.mount) umount "$mnt" || exit 1 ;;
esac
exit 0
EOF
chmod 755 /usr/local/sbin/systemctl
mount -o noatime,nodev,nosuid "$dev" "$mnt"
grep " $mnt " /proc/self/mountinfo | cut -d' ' -f6 > "$out/options.before"
start_holder() {
  sh -c "cd '$mnt' && exec sleep 120" </dev/null >/dev/null 2>&1 &
  pid=$!
  mkdir "$cgroot/sgtest-$pid.service"
  echo $pid > "$cgroot/sgtest-$pid.service/cgroup.procs"
  echo "sgtest-$pid.service" >> "$out/units"
  while [ "$(readlink /proc/$pid/cwd)" != "$mnt" ]; do sleep 0.05; done
}
# 1: a full repair with --stop-units.
start_holder
"$exe" repair --json --yes --stop-units --trust-fence --backup-dir "$backup" "$mnt" \
  > "$out/run1.json" 2> "$out/run1.err"
echo $? > "$out/run1.code"
grep " $mnt " /proc/self/mountinfo | cut -d' ' -f6 > "$out/options.after"
cat "$mnt/data" > "$out/data.after" 2>/dev/null
# 2: a crash after the unmount (the record lists the stopped service) ...
start_holder
SNAPGUARD_FAILPOINT=fence:crash "$exe" repair --json --yes --force --stop-units --trust-fence \
  --backup-dir "$backup" "$mnt" > "$out/run2.json" 2> "$out/run2.err"
echo $? > "$out/run2.code"
cp /run/snapguard/repair-*.json "$out/record.crashed" 2>/dev/null
# ... and the next run rolls back: mounted again, the service started again.
"$exe" repair --json --yes --trust-fence --backup-dir "$backup" "$mnt" \
  > "$out/run3.json" 2> "$out/run3.err"
echo $? > "$out/run3.code"
grep " $mnt " /proc/self/mountinfo | cut -d' ' -f6 > "$out/options.rolled-back"
for u in $(cat "$out/units"); do
  for p in $(cat "$cgroot/$u/cgroup.procs" 2>/dev/null); do kill $p; done
  while [ -n "$(cat "$cgroot/$u/cgroup.procs" 2>/dev/null)" ]; do sleep 0.05; done
  rmdir "$cgroot/$u"
done
umount "$mnt" 2>/dev/null
exit 0
"#;

#[test]
fn stop_units_with_systemd_stops_the_service_and_the_mount_unit_and_starts_them_again() {
    let Some(cgroup_root) = premise(
        "stop_units_with_systemd_stops_the_service_and_the_mount_unit_and_starts_them_again",
    ) else {
        return;
    };
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-units-systemctl");
    let img = fixtures::mkfs(&dir, "s.img", fixtures::Kind::Ext4, 4096, &[], 32 * MIB);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("s");
    // Data, then unclean (state 0), never mounted on the host: the mount lives only in the
    // namespace, so the fence there proves the device free.
    {
        let m = Mount::new(lo.dev(), &mnt, None);
        fs::write(mnt.join("data"), b"kept").unwrap();
        m.unmount();
    }
    fixtures::debugfs_w_script(lo.dev(), &["ssv state 0"]);
    let out = dir.mkdir("out");
    let exe = assert_cmd::cargo::cargo_bin("snapguard");
    let status = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            NAMESPACE_SCRIPT,
            "sh",
        ])
        .arg(lo.dev())
        .arg(&mnt)
        .arg(&out)
        .arg(&exe)
        .arg(dir.join("backup"))
        .arg(&cgroup_root)
        .stdin(Stdio::null())
        .status()
        .expect("unshare");
    assert!(status.success(), "the namespace script failed: {status:?}");
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap_or_default();
    let units: Vec<String> = read("units").lines().map(str::to_string).collect();
    for u in &units {
        // Emptied and removed by the script; only ours (sgtest-PID.service), never others.
        let _ = fs::remove_dir(cgroup_root.join(u));
    }
    assert_eq!(units.len(), 2, "{}", read("units"));
    let mount_unit = snapguard::repair::units::mount_unit(&mnt).unwrap();
    let shown = |verb: &str, unit: &str| snapguard::repair::units::command(verb, unit).display();

    // Run 1: repaired; the service stopped before the unmount and started after the mount.
    let doc: Value = serde_json::from_str(&read("run1.json"))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", read("run1.json"), read("run1.err")));
    let t = &doc["targets"][0];
    assert_eq!(
        read("run1.code").trim(),
        "1",
        "{doc:#}\n{}",
        read("run1.err")
    );
    let log = read("systemctl.log");
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(
        &calls[..3],
        &[
            format!("stop -- {}", units[0]).as_str(),
            format!("stop -- {mount_unit}").as_str(),
            format!("start -- {}", units[0]).as_str(),
        ],
        "{log}"
    );
    let steps = t["steps"].as_array().unwrap();
    let position = |name: &str| steps.iter().position(|s| s["step"] == name).unwrap();
    assert!(position("stop-unit") < position("unmount"));
    assert!(position("restore") < position("start-unit"));
    for (name, command) in [
        ("stop-unit", shown("stop", &units[0])),
        ("unmount", shown("stop", &mount_unit)),
        ("start-unit", shown("start", &units[0])),
    ] {
        let s = &steps[position(name)];
        assert_eq!(s["result"], "ok", "{name}: {doc:#}");
        assert_eq!(s["command"], command.as_str(), "{name}");
    }
    // No unit file for a mount made by hand: mount(2) with the recorded options.
    assert!(steps[position("restore")]["command"].is_null(), "{doc:#}");
    assert_eq!(
        read("options.after"),
        read("options.before"),
        "same options"
    );
    assert_eq!(read("data.after"), "kept");

    // Run 2 crashed after the unmount; its record lists the service (recorded before stop).
    assert_eq!(read("run2.code").trim(), "8", "{}", read("run2.err"));
    let record: Value = serde_json::from_str(&read("record.crashed")).unwrap();
    assert_eq!(record["phase"], "unmounting", "{record:#}");
    assert_eq!(
        record["stopped_units"],
        serde_json::json!([units[1].as_str()]),
        "{record:#}"
    );
    // Run 3 rolled back: mounted again with the same options, the service started again.
    let doc3: Value = serde_json::from_str(&read("run3.json")).unwrap();
    assert_eq!(read("run3.code").trim(), "8", "{doc3:#}");
    assert_eq!(read("options.rolled-back"), read("options.before"));
    assert_eq!(
        calls.last().copied(),
        Some(format!("start -- {}", units[1]).as_str()),
        "{log}"
    );
    drop(lo);
}

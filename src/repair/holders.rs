//! Processes that hold a filesystem: cwd, root, exe, open files and memory maps, read with
//! `procfs` under `SysRoot`; a `/proc` entry that cannot be read is a possible holder.

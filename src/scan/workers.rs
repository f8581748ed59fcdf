//! Scanning many targets on every core when that pays: each worker takes the next target in
//! turn, and the results come back in the targets' order, so the report is the same as a
//! one-by-one run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Targets each worker should have at least: starting a thread costs about as much as
/// scanning a couple of images from the page cache, so a few targets stay on one thread.
const TARGETS_PER_WORKER: usize = 4;

/// The mean time per target spent *waiting* (wall time the thread was not on a CPU: a read
/// that waits for the device) above which more threads are started, so that every core keeps
/// a read in flight. A target read from the page cache takes 15–40 µs and waits for nothing;
/// starting, feeding and joining a thread (its first allocation maps a new malloc arena)
/// costs about 300 µs on the 2-core VM we measure on, so with cached data a second thread
/// never earned its start (measured: 100 cached ext4 images took 2.6 ms on one thread, 2.9 ms
/// on two; 20 XFS images, where one dirty log's first search pays one-time costs of its own,
/// spawned a thread that cost more than it saved).
const SLOW_TARGET: Duration = Duration::from_micros(250);

/// The mean CPU time per target above which more threads are started even though the targets
/// wait for nothing: then a second core's share is worth several thread starts.
const HEAVY_TARGET: Duration = Duration::from_millis(1);

/// Where the time of the targets since the window's start went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Targets finished in the window.
    pub done: usize,
    /// Wall time the thread spent off a CPU (blocked on a read, or waiting to run).
    pub waited: Duration,
    /// CPU time the thread used.
    pub computed: Duration,
}

/// A window of targets on the calling thread: from the end of one target on. The thread's
/// CPU clock (a system call) is read only when the wall clock says the targets were slow.
struct Window {
    started: Instant,
    cpu_at_start: Option<Duration>,
    done: usize,
}

impl Window {
    fn start() -> Self {
        Self {
            cpu_at_start: crate::sys::process::thread_cpu_time(),
            started: Instant::now(),
            done: 0,
        }
    }

    /// The split of the window's `wall` time, reading the CPU clock; without a CPU clock all
    /// of it counts as waiting.
    fn spent(&mut self, wall: Duration) -> Spent {
        let cpu = match (self.cpu_at_start, crate::sys::process::thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => Duration::ZERO,
        };
        Spent {
            done: self.done,
            waited: wall.saturating_sub(cpu),
            computed: cpu,
        }
    }
}

/// `work` applied to every item, in the items' order. The calling thread starts alone; once
/// the items prove slow (see [`SLOW_TARGET`]) up to [`worker_count`] threads in all share
/// the rest. A panic in `work` is passed on, as in a sequential run.
pub fn map_in_order<T, R, F>(items: &[T], work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let workers = worker_count(items.len(), crate::sys::process::usable_cpus());
    let next = AtomicUsize::new(0);
    let take = || {
        let index = next.fetch_add(1, Ordering::Relaxed);
        items.get(index).map(|item| (index, item))
    };
    let run = || {
        let mut done = Vec::new();
        while let Some((index, item)) = take() {
            done.push((index, work(item)));
        }
        done
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|scope| {
        let mut helpers = Vec::new();
        let mut all = Vec::with_capacity(items.len());
        // Timed from the end of the first target: it also pays one-time costs (code paged
        // in, tables built) that say nothing about the others.
        let mut window: Option<Window> = None;
        while let Some((index, item)) = take() {
            all.push((index, work(item)));
            let left = items.len().saturating_sub(index + 1);
            let Some(current) = window.as_mut() else {
                window = Some(Window::start());
                continue;
            };
            current.done += 1;
            if !helpers.is_empty() || workers == 1 || left < 2 {
                continue;
            }
            let wall = current.started.elapsed();
            // Cheap test first: targets fast on the wall clock neither waited nor computed
            // long, and the CPU clock (a system call) is not read for them.
            if wall < SLOW_TARGET * u32::try_from(current.done).unwrap_or(u32::MAX) {
                continue;
            }
            if worth_more_threads(current.spent(wall), left) {
                // A thread that cannot be started (a low RLIMIT_NPROC) is no error: the
                // others, the calling thread at least, take its share.
                helpers = (1..workers)
                    .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, run).ok())
                    .collect();
            } else {
                // Slow but busy on the CPU (first use of a code path, page faults): judge
                // the next targets afresh, so that a later run of device reads still counts.
                window = Some(Window::start());
            }
        }
        for helper in helpers {
            match helper.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|&(index, _)| index);
    all.into_iter().map(|(_, result)| result).collect()
}

/// Whether more threads pay for the `left` targets still to do, after the targets of `spent`
/// (the first one not counted): when at least two are left and the targets either waited
/// (reads from a device: [`SLOW_TARGET`] each on average) or computed long enough
/// ([`HEAVY_TARGET`] each) for another core's share to be worth a thread's start.
pub fn worth_more_threads(spent: Spent, left: usize) -> bool {
    let per = |limit: Duration| limit * u32::try_from(spent.done).unwrap_or(u32::MAX);
    spent.done > 0
        && left >= 2
        && (spent.waited >= per(SLOW_TARGET) || spent.computed >= per(HEAVY_TARGET))
}

/// How many threads scan `targets` targets on `cpus` CPUs: one per CPU, but none with fewer
/// than [`TARGETS_PER_WORKER`] targets to do.
pub fn worker_count(targets: usize, cpus: usize) -> usize {
    cpus.min(targets / TARGETS_PER_WORKER).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items() {
        for slow in [false, true] {
            let items: Vec<u64> = (0..200).collect();
            let squares = map_in_order(&items, |&i| {
                // Uneven work, so that the workers finish out of order.
                if slow && i % 7 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                i * i
            });
            assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        }
        assert!(map_in_order(&[] as &[u8], |_| 0).is_empty());
    }

    #[test]
    fn slow_targets_are_shared_between_threads() {
        let items: Vec<u32> = (0..40).collect();
        let thread_of = |pause: Duration| {
            let ids = map_in_order(&items, |_| {
                std::thread::sleep(pause);
                std::thread::current().id()
            });
            let mut distinct = ids.clone();
            distinct.sort_by_key(|id| format!("{id:?}"));
            distinct.dedup();
            distinct.len()
        };
        // (Fast targets staying on one thread is `worth_more_threads`' test: a run of them
        // here could be preempted long enough to look slow.)
        let expected = worker_count(items.len(), crate::sys::process::usable_cpus());
        assert_eq!(
            thread_of(Duration::from_millis(2)),
            expected,
            "slow targets use every core"
        );
    }

    #[test]
    fn more_threads_only_for_slow_targets_with_work_left() {
        let us = Duration::from_micros;
        let spent = |done, waited, computed| Spent {
            done,
            waited: us(waited),
            computed: us(computed),
        };
        assert!(
            !worth_more_threads(spent(10, 50, 250), 90),
            "30 µs a target: cached"
        );
        assert!(
            worth_more_threads(spent(1, 4_900, 100), 99),
            "a read from a device"
        );
        assert!(
            !worth_more_threads(spent(1, 20, 400), 18),
            "400 µs on the CPU, waiting for nothing: a one-time cost, not worth a thread"
        );
        assert!(
            worth_more_threads(spent(2, 0, 3_000), 10),
            "1.5 ms of CPU a target: another core's share pays"
        );
        assert!(
            !worth_more_threads(spent(1, 5_000, 0), 1),
            "one left: no thread for it"
        );
        assert!(!worth_more_threads(spent(0, 5_000, 0), 100));
        // (No wall-clock test of a whole run: on a loaded machine preemption is waiting too,
        // and rightly starts a thread, so such a test fails at random. The rule is tested here,
        // its effect by scripts/bench.sh: no thread in 100 cached runs, strace -e clone3.)
    }

    #[test]
    fn few_targets_stay_on_one_thread() {
        assert_eq!(worker_count(0, 2), 1);
        assert_eq!(worker_count(3, 2), 1);
        assert_eq!(worker_count(8, 2), 2);
        assert_eq!(worker_count(100, 2), 2);
        assert_eq!(worker_count(100, 1), 1);
        assert_eq!(worker_count(9, 64), 2);
    }
}

//! Scanning many targets on every core when that pays: each worker takes the next target in
//! turn, and the results come back in the targets' order, so the report is the same as a
//! one-by-one run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Targets each worker should have at least: starting a thread costs about as much as
/// scanning a couple of images from the page cache, so a few targets stay on one thread.
const TARGETS_PER_WORKER: usize = 4;

/// The mean time per target above which more threads are started. A target read from the
/// page cache takes 15–40 µs; starting, feeding and joining a thread (its first allocation
/// maps a new malloc arena) costs about 300 µs on the 2-core VM we measure on, so with
/// cached data a second thread never earned its start (measured: 100 cached ext4 images took
/// 2.6 ms on one thread, 2.9 ms on two). A target that waits for a device takes far longer
/// than this, and then every core keeps a read in flight.
const SLOW_TARGET: Duration = Duration::from_micros(250);

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
        let mut since_first: Option<Instant> = None;
        while let Some((index, item)) = take() {
            all.push((index, work(item)));
            let left = items.len().saturating_sub(index + 1);
            let Some(first_done) = since_first else {
                since_first = Some(Instant::now());
                continue;
            };
            if helpers.is_empty()
                && workers > 1
                && worth_more_threads(all.len() - 1, left, first_done.elapsed())
            {
                // A thread that cannot be started (a low RLIMIT_NPROC) is no error: the
                // others, the calling thread at least, take its share.
                helpers = (1..workers)
                    .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, run).ok())
                    .collect();
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

/// Whether more threads pay for the `left` targets still to do, after `done` (the first one
/// not counted) took `elapsed`:
/// when the targets are slow (waiting for a device) and at least two are left.
pub fn worth_more_threads(done: usize, left: usize, elapsed: Duration) -> bool {
    done > 0 && left >= 2 && elapsed >= SLOW_TARGET * u32::try_from(done).unwrap_or(u32::MAX)
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
        assert!(
            !worth_more_threads(10, 90, us(300)),
            "30 µs a target: cached"
        );
        assert!(worth_more_threads(1, 99, us(5_000)), "a read from a device");
        assert!(
            !worth_more_threads(1, 1, us(5_000)),
            "one left: no thread for it"
        );
        assert!(!worth_more_threads(0, 100, us(5_000)));
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

//! Scanning many targets on every core: each worker takes the next target in turn, and the
//! results come back in the targets' order, so the report is the same as a one-by-one run.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Targets each worker should have at least: starting a thread costs about as much as
/// scanning a couple of images from the page cache, so a few targets stay on one thread.
const TARGETS_PER_WORKER: usize = 4;

/// `work` applied to every item, on up to [`worker_count`] threads (the calling one
/// included); the results in the items' order. A panic in `work` is passed on, as in a
/// sequential run.
pub fn map_in_order<T, R, F>(items: &[T], work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let workers = worker_count(items.len(), crate::sys::process::usable_cpus());
    if workers <= 1 {
        return items.iter().map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let run = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                break;
            };
            done.push((index, work(item)));
        }
        done
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|scope| {
        // A thread that cannot be started (a low RLIMIT_NPROC) is no error: the others,
        // the calling thread at least, take its share.
        let helpers: Vec<_> = (1..workers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, run).ok())
            .collect();
        let mut all = run();
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
        let items: Vec<u64> = (0..1000).collect();
        let squares = map_in_order(&items, |&i| {
            // Uneven work, so that the workers finish out of order.
            if i % 7 == 0 {
                std::thread::yield_now();
            }
            i * i
        });
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert!(map_in_order(&[] as &[u8], |_| 0).is_empty());
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

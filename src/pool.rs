//! Persistent worker threads shared by every engine of the process.
//!
//! Spawning threads per frame costs tens of microseconds each and, with several elements in one
//! pipeline, puts more runnable threads than cores on the machine. Instead, engines that ask for
//! the same number of threads share one pool (a `rayon` pool, kept while any engine holds it):
//! two chained `sesrupscale` instances with the default thread count queue their work on the
//! same `n` workers rather than running `2n` threads on `n` cores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// A handle on a shared pool of worker threads (or on none: work runs on the caller).
#[derive(Clone, Debug)]
pub struct Pool {
    threads: usize,
    inner: Option<Arc<rayon::ThreadPool>>,
}

static POOLS: Mutex<Option<HashMap<usize, Weak<rayon::ThreadPool>>>> = Mutex::new(None);

impl Pool {
    /// The process's pool of `threads` workers (0: one per available CPU); 1 runs work on the
    /// calling thread. Pools are created on first use and dropped with their last handle.
    pub fn shared(threads: usize) -> Result<Pool, String> {
        let threads = if threads == 0 { crate::available_threads() } else { threads };
        if threads <= 1 {
            return Ok(Pool::inline());
        }
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let pools = pools.get_or_insert_with(HashMap::new);
        if let Some(p) = pools.get(&threads).and_then(Weak::upgrade) {
            return Ok(Pool { threads, inner: Some(p) });
        }
        let p = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sesr-worker-{i}"))
            .build()
            .map_err(|e| format!("cannot start {threads} worker threads: {e}"))?;
        let p = Arc::new(p);
        pools.retain(|_, w| w.strong_count() > 0);
        pools.insert(threads, Arc::downgrade(&p));
        Ok(Pool { threads, inner: Some(p) })
    }

    /// No workers: everything runs on the calling thread.
    pub fn inline() -> Pool {
        Pool { threads: 1, inner: None }
    }

    /// Threads work is spread over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on every item, in parallel on the pool's workers, and returns when all are done
    /// (a panic in one is resumed here).
    pub fn run<T: Send>(&self, items: Vec<T>, f: impl Fn(T) + Sync) {
        match &self.inner {
            Some(p) if items.len() > 1 => p.scope(|s| {
                let f = &f;
                for item in items {
                    s.spawn(move |_| f(item));
                }
            }),
            _ => items.into_iter().for_each(f),
        }
    }

    /// Runs `a` and `b`, in parallel when the pool has workers.
    pub fn join<A: FnOnce() + Send, B: FnOnce() + Send>(&self, a: A, b: B) {
        match &self.inner {
            Some(p) => {
                p.join(a, b);
            }
            None => {
                a();
                b();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn pools_are_shared_and_persistent() {
        let a = Pool::shared(3).unwrap();
        let b = Pool::shared(3).unwrap();
        assert!(Arc::ptr_eq(a.inner.as_ref().unwrap(), b.inner.as_ref().unwrap()));
        assert_eq!(Pool::shared(1).unwrap().threads(), 1);
        // Work runs on the pool's own threads, and all of it runs.
        let names = Mutex::new(std::collections::HashSet::new());
        let count = AtomicUsize::new(0);
        for _ in 0..20 {
            a.run((0..6).collect(), |i: usize| {
                count.fetch_add(i, Ordering::SeqCst);
                names.lock().unwrap().insert(std::thread::current().name().unwrap_or("").to_string());
            });
        }
        assert_eq!(count.load(Ordering::SeqCst), 20 * 15);
        let names = names.into_inner().unwrap();
        assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("sesr-worker-")), "{names:?}");
        assert!(names.len() <= 3);
    }
}

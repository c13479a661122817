//! A cap on the jobs each principal (token subject) has in flight: created
//! and not yet settled (every expected host answered, or the deadline passed).
//! One token cannot then fill every agent's job slots and starve everyone
//! else; over the cap the API answers 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::error::ApiError;

/// Jobs in flight per principal, each with its deadline.
#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    next: AtomicU64,
    jobs: Mutex<HashMap<String, Vec<(u64, Instant)>>>,
}

/// One job's place under its principal's cap; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    inflight: Arc<InFlight>,
    who: String,
    token: u64,
}

impl InFlight {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(InFlight {
            limit,
            next: AtomicU64::new(0),
            jobs: Mutex::default(),
        })
    }

    /// A place for a job of `who` that settles by `deadline` at the latest, or
    /// [`ApiError::TooManyJobs`] saying when the earliest one ends.
    pub fn try_acquire(self: &Arc<Self>, who: &str, deadline: Instant) -> Result<Slot, ApiError> {
        let mut jobs = self
            .jobs
            .lock()
            .map_err(|_| ApiError::Internal("job quota lock poisoned".into()))?;
        let mine = jobs.entry(who.to_owned()).or_default();
        if mine.len() >= self.limit {
            let earliest = mine.iter().map(|(_, d)| *d).min().unwrap_or(deadline);
            let wait = earliest.saturating_duration_since(Instant::now());
            return Err(ApiError::TooManyJobs {
                limit: self.limit,
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        mine.push((token, deadline));
        Ok(Slot {
            inflight: self.clone(),
            who: who.to_owned(),
            token,
        })
    }

    /// How many jobs `who` has in flight.
    pub fn count(&self, who: &str) -> usize {
        self.jobs
            .lock()
            .map(|j| j.get(who).map_or(0, Vec::len))
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.inflight.jobs.lock()
            && let Some(mine) = jobs.get_mut(&self.who)
        {
            mine.retain(|(t, _)| *t != self.token);
            if mine.is_empty() {
                jobs.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_cap_is_per_principal_and_freed_on_drop() {
        let q = InFlight::new(2);
        let soon = Instant::now() + Duration::from_millis(1500);
        let a1 = q.try_acquire("alice", soon).unwrap();
        let _a2 = q
            .try_acquire("alice", soon + Duration::from_secs(9))
            .unwrap();
        match q.try_acquire("alice", soon) {
            Err(ApiError::TooManyJobs {
                limit: 2,
                retry_after_secs,
            }) => assert!((1..=2).contains(&retry_after_secs), "{retry_after_secs}"),
            other => panic!("{other:?}"),
        }
        // Bob is not Alice.
        let _b = q.try_acquire("bob", soon).unwrap();
        drop(a1);
        assert_eq!(q.count("alice"), 1);
        let _a3 = q.try_acquire("alice", soon).unwrap();
        assert_eq!(q.count("alice"), 2);
    }
}

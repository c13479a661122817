//! Waiting between attempts: the one back-off every retry loop uses. Each
//! pause doubles the last, up to a ceiling, so a brief outage is bridged at
//! once and a long one costs little.

use std::time::Duration;

/// Exponential back-off from `first` to `ceiling`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// The usual policy: 100 ms, doubling, at most 2 s.
    pub const fn new() -> Self {
        Backoff::between(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// From `first`, doubling, at most `ceiling`.
    pub const fn between(first: Duration, ceiling: Duration) -> Self {
        Backoff {
            first,
            next: first,
            ceiling,
        }
    }

    /// The pause before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        delay
    }

    /// The pause the next [`wait`](Self::wait) would take, without taking it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Start again from the first pause (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleep for the next pause.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling() {
        let mut b = Backoff::between(Duration::from_millis(100), Duration::from_millis(500));
        let pauses: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}

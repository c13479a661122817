//! A one-line progress indicator on stderr, shown only when stderr is a
//! terminal so pipes and logs stay clean. Plain `\r` rewrites, no escape codes.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
/// Quick answers should not flash a spinner.
const SHOW_AFTER: Duration = Duration::from_millis(800);

pub struct Progress {
    enabled: bool,
    started: Instant,
    frame: usize,
    width: usize,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            frame: 0,
            width: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Redraw the line with `text` and the elapsed time.
    pub fn update(&mut self, text: &str) {
        if !self.enabled || self.started.elapsed() < SHOW_AFTER {
            return;
        }
        let line = format!(
            "{} {text} ({}s)",
            FRAMES[self.frame % FRAMES.len()],
            self.started.elapsed().as_secs()
        );
        self.frame += 1;
        let pad = self.width.saturating_sub(line.chars().count());
        self.width = self.width.max(line.chars().count());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}{}", " ".repeat(pad));
        let _ = err.flush();
    }

    /// Erase the line, leaving the cursor at its start.
    pub fn finish(&mut self) {
        if self.enabled && self.width > 0 {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}\r", " ".repeat(self.width));
            let _ = err.flush();
            self.width = 0;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Await `fut`, animating `label` while it runs.
pub async fn while_waiting<F: Future>(label: &str, fut: F) -> F::Output {
    let mut progress = Progress::new();
    if !progress.enabled {
        return fut.await;
    }
    let mut fut = std::pin::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            out = &mut fut => {
                progress.finish();
                return out;
            }
            _ = tick.tick() => progress.update(label),
        }
    }
}

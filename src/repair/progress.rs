//! Progress of a long checker run: a bar (indicatif) when stderr is a terminal, a log line
//! every 10 % otherwise (a journal or a log file wants lines, not carriage returns).

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::Cell;
use std::io::IsTerminal as _;

/// A progress display for one command.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    last_logged: Cell<u8>,
}

impl Progress {
    /// Start showing progress of `label`.
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(1000);
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}%") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            last_logged: Cell::new(0),
        }
    }

    /// The fraction done, 0.0..=1.0.
    pub fn set(&self, fraction: f64) {
        let fraction = fraction.clamp(0.0, 1.0);
        match &self.bar {
            Some(bar) => bar.set_position((fraction * 1000.0) as u64),
            None => {
                let tenth = (fraction * 10.0) as u8;
                if tenth > self.last_logged.get() {
                    self.last_logged.set(tenth);
                    tracing::info!("{}: {}%", self.label, u32::from(tenth) * 10);
                }
            }
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

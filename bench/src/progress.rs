//! Progress of a long `forkbench` run on standard error: an `indicatif`
//! bar when standard error is a terminal, otherwise one line per step
//! (`forkbench: [i/n] what`), which is what logs and CI want.

use std::io::IsTerminal;

/// Counts steps of a known total.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
}

impl Progress {
    /// `total` steps to come.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("forkbench: [{pos}/{len}] {bar:30} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    /// Starts the next step, `what`.
    pub fn step(&mut self, what: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done as u64 - 1);
                bar.set_message(what.to_string());
            }
            None => eprintln!("forkbench: [{}/{}] {what}", self.done, self.total),
        }
    }

    /// All steps are done: clears the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

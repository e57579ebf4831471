//! Progress of a run: a bar on a terminal, and a log line with rate and ETA every
//! `log_every` otherwise (batch logs), so a long run is never silent.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else log lines.
    Auto,
    /// Log lines only.
    Log,
    /// Nothing.
    Quiet,
}

/// Objects done out of a total, with rate and ETA.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    log: bool,
    total: u64,
    done: u64,
    start_done: u64,
    t0: Instant,
    last_log: Instant,
    log_every: Duration,
    name: String,
    quiet: bool,
}

impl Progress {
    /// Progress of `total` objects of which `done` are done already (a resumed run), under
    /// the program name `name`.
    pub fn new(name: &str, total: usize, done: usize, mode: ProgressMode) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (mode == ProgressMode::Auto && tty).then(|| {
            let pb = ProgressBar::new(total as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} objects ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_position(done as u64);
            pb
        });
        let now = Instant::now();
        Self {
            log: bar.is_none() && mode != ProgressMode::Quiet,
            bar,
            total: total as u64,
            done: done as u64,
            start_done: done as u64,
            t0: now,
            last_log: now,
            log_every: Duration::from_secs(30),
            name: name.to_string(),
            quiet: mode == ProgressMode::Quiet,
        }
    }

    /// Log lines every `d` (default 30 s).
    pub fn with_log_interval(mut self, d: Duration) -> Self {
        self.log_every = d;
        self
    }

    /// `n` more objects done.
    pub fn inc(&mut self, n: usize) {
        self.done += n as u64;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        } else if self.log && self.last_log.elapsed() >= self.log_every {
            self.last_log = Instant::now();
            eprintln!("{}: {}", self.name, self.line());
        }
    }

    /// `done/total objects (rate/s, eta …)`.
    pub fn line(&self) -> String {
        let secs = self.t0.elapsed().as_secs_f64();
        let new = (self.done - self.start_done) as f64;
        let rate = if secs > 0.0 { new / secs } else { 0.0 };
        let eta = if rate > 0.0 {
            format_secs((self.total.saturating_sub(self.done)) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "{}/{} objects ({:.1}%, {rate:.2}/s, eta {eta})",
            self.done,
            self.total,
            100.0 * self.done as f64 / (self.total.max(1) as f64)
        )
    }

    /// Print a message without breaking the bar (nothing when quiet).
    pub fn note(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{}: {msg}", self.name)),
            None => eprintln!("{}: {msg}", self.name),
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `1h02m03s`, `4m05s`, `6.0s`.
pub fn format_secs(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let t = s.round() as u64;
    if t >= 3600 {
        format!("{}h{:02}m{:02}s", t / 3600, (t % 3600) / 60, t % 60)
    } else if t >= 60 {
        format!("{}m{:02}s", t / 60, t % 60)
    } else {
        format!("{s:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(format_secs(3723.0), "1h02m03s");
        assert_eq!(format_secs(245.0), "4m05s");
        assert_eq!(format_secs(6.04), "6.0s");
        assert_eq!(format_secs(f64::INFINITY), "?");
    }

    #[test]
    fn log_lines_count_from_the_resume_point() {
        let mut p = Progress::new("t", 100, 40, ProgressMode::Quiet);
        p.inc(10);
        let l = p.line();
        assert!(l.starts_with("50/100 objects (50.0%"), "{l}");
    }
}

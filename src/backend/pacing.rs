//! Outgoing pace and line splitting for networks with flood limits (IRC).
//!
//! Pure logic, no libpurple: the purple layer asks [`TokenBucket`] when the
//! next line may go, and [`split_message`] how to cut a long message.
//!
//! # Why our own pacing
//! libpurple 2.14's IRC plugin queues every line and drains the queue from a
//! one-second timer with a budget of (now − last write) ÷ interval, so an
//! isolated line waits up to two seconds and a paste trickles at one line
//! every two seconds (see `docs/irc.md`). Sapphire turns the plugin's own
//! limit off for the accounts it paces and applies a real token bucket
//! here: a burst of [`DEFAULT_BURST`] lines at once, then one line per
//! [`DEFAULT_INTERVAL`] — the steady rate of RFC 1459 §8.10 (2 s a
//! message).

use std::time::{Duration, Instant};

/// Lines that may go at once after a quiet spell. Ten: a conversation of
/// short lines typed in a row never waits (each reply then carries its
/// message's `seq`), and common servers' flood limits (a 10-second
/// allowance at 2 s a line, or a receive queue of several KiB) take it.
pub const DEFAULT_BURST: u32 = 10;
/// Steady rate once the burst is spent: one line per interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(2000);

/// An account's pace: `burst` lines at once, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub burst: u32,
    pub interval: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            burst: DEFAULT_BURST,
            interval: DEFAULT_INTERVAL,
        }
    }
}

impl Pace {
    /// The pace an IRC account's stored options ask for: the plugin's own
    /// `ratelimit-burst` (lines, 1–100) and `ratelimit-interval` (whole
    /// seconds, 0–60; 0 means no limit, for a bouncer that paces itself),
    /// which Sapphire applies instead of libpurple (`docs/irc.md`). Unset
    /// or out of range: the defaults.
    pub fn from_options(options: &serde_json::Value) -> Pace {
        let int = |k: &str, max: u64| {
            options
                .get(k)
                .and_then(|v| v.as_u64())
                .filter(|v| *v <= max)
        };
        let d = Pace::default();
        Pace {
            burst: int("ratelimit-burst", 100)
                .filter(|b| *b >= 1)
                .map_or(d.burst, |b| b as u32),
            interval: int("ratelimit-interval", 60).map_or(d.interval, Duration::from_secs),
        }
    }
}

/// A token bucket: `burst` tokens, one more every `interval`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: u32,
    interval: Duration,
    /// Tokens at `at` (fractional refills are kept as time, not lost).
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, interval: Duration, now: Instant) -> TokenBucket {
        let burst = burst.max(1);
        TokenBucket {
            burst,
            interval,
            tokens: f64::from(burst),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.at {
            return;
        }
        if self.interval.is_zero() {
            self.tokens = f64::from(self.burst);
        } else {
            let gained = (now - self.at).as_secs_f64() / self.interval.as_secs_f64();
            self.tokens = (self.tokens + gained).min(f64::from(self.burst));
        }
        self.at = now;
    }

    /// Changes the pace, keeping the tokens there are (at most the new
    /// burst).
    pub fn set_pace(&mut self, pace: Pace, now: Instant) {
        self.refill(now);
        self.burst = pace.burst.max(1);
        self.interval = pace.interval;
        self.tokens = self.tokens.min(f64::from(self.burst));
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there (`now` if there is one).
    pub fn next_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        let missing = 1.0 - self.tokens;
        now + self.interval.mul_f64(missing)
    }

    /// How long `lines` more lines take to go, from `now`.
    pub fn time_for(&mut self, lines: u32, now: Instant) -> Duration {
        self.refill(now);
        let extra = f64::from(lines) - self.tokens;
        if extra <= 0.0 {
            Duration::ZERO
        } else {
            self.interval.mul_f64(extra.ceil())
        }
    }
}

/// Longest IRC message text Sapphire sends in one `PRIVMSG` to `target`:
/// 512 bytes a line, less CRLF, the command and target, and the
/// `:nick!user@host ` prefix the server adds when relaying (up to about
/// 100 bytes on common servers).
pub fn irc_text_limit(target: &str) -> usize {
    const LINE: usize = 512;
    const PREFIX: usize = 100;
    LINE.saturating_sub(2 + "PRIVMSG ".len() + target.len() + " :".len() + PREFIX)
        .max(64)
}

/// Cuts `text` into lines of at most `max` bytes: first at its own line
/// breaks, then at the last space before the limit, and only inside a
/// word (at a character boundary) when a word alone is longer than `max`.
/// Empty lines are dropped (IRC cannot send them).
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let mut rest = line.trim_end_matches('\r');
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let head = &rest[..cut];
            let at = match head.rfind(' ') {
                Some(space) if space > 0 => space,
                _ => cut,
            };
            let piece = rest[..at].trim_end_matches(' ');
            if !piece.is_empty() {
                out.push(piece.to_owned());
            }
            rest = rest[at..].trim_start_matches(' ');
        }
        if !rest.trim().is_empty() {
            out.push(rest.trim_end_matches(' ').to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_one_line_per_interval() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5, Duration::from_secs(2), t0);
        for _ in 0..5 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        assert_eq!(b.next_at(t0), t0 + Duration::from_secs(2));
        assert!(!b.try_take(t0 + Duration::from_millis(1999)));
        assert!(b.try_take(t0 + Duration::from_secs(2)));
        // A quiet minute refills the burst, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(b.try_take(later));
        }
        assert!(!b.try_take(later));
    }

    #[test]
    fn time_for_a_paste_counts_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5, Duration::from_secs(2), t0);
        assert_eq!(b.time_for(5, t0), Duration::ZERO);
        assert_eq!(b.time_for(20, t0), Duration::from_secs(30));
    }

    #[test]
    fn the_pace_comes_from_the_accounts_options() {
        let p = |v: serde_json::Value| Pace::from_options(&v);
        assert_eq!(p(serde_json::json!({})), Pace::default());
        assert_eq!(
            p(serde_json::json!({"ratelimit-burst": 3, "ratelimit-interval": 1})),
            Pace {
                burst: 3,
                interval: Duration::from_secs(1)
            }
        );
        // Out of range or mistyped: the default.
        let odd = p(serde_json::json!({"ratelimit-burst": 0, "ratelimit-interval": "x"}));
        assert_eq!(odd, Pace::default());
        assert_eq!(
            p(serde_json::json!({"ratelimit-interval": 0})).interval,
            Duration::ZERO
        );
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, Duration::from_secs(2), t0);
        b.set_pace(p(serde_json::json!({"ratelimit-burst": 2})), t0);
        assert!(b.try_take(t0) && b.try_take(t0) && !b.try_take(t0));
    }

    #[test]
    fn zero_interval_means_no_limit() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, Duration::ZERO, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_nanos(1)));
    }

    #[test]
    fn long_messages_are_cut_at_words() {
        let text = "lorem ipsum dolor sit amet ".repeat(60);
        let lines = split_message(&text, 100);
        assert!(lines.len() > 1);
        for l in &lines {
            assert!(l.len() <= 100, "{l}");
            assert!(!l.starts_with(' ') && !l.ends_with(' '), "{l:?}");
        }
        // Nothing lost but the spaces at the cuts.
        let joined: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(joined, words);
    }

    #[test]
    fn a_word_longer_than_a_line_is_cut_at_a_character_boundary() {
        let text = "é".repeat(300);
        let lines = split_message(&text, 101);
        assert!(lines.iter().all(|l| l.len() <= 101));
        assert_eq!(lines.concat(), text);
    }

    #[test]
    fn leading_spaces_make_no_empty_line() {
        let lines = split_message(&format!("   {}", "w".repeat(20)), 10);
        assert!(lines.iter().all(|l| !l.trim().is_empty()), "{lines:?}");
    }

    #[test]
    fn line_breaks_are_kept_and_empty_lines_dropped() {
        assert_eq!(split_message("a\r\n\nb\n", 10), ["a", "b"]);
    }

    #[test]
    fn the_irc_limit_leaves_room_for_the_relay_prefix() {
        let limit = irc_text_limit("#sapphire");
        assert!(limit + "PRIVMSG #sapphire :".len() + 2 + 100 <= 512);
        assert!(limit > 350);
    }
}

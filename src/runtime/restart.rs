//! Flink's restart strategies (`restart-strategy.type` and its companion keys, same names and
//! defaults). Only failures of the outside world (a server went away, a timeout) restart a job;
//! a problem the user must fix stops it at once, whatever the strategy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::connectors::options::parse_duration;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    None,
    FixedDelay {
        attempts: u32,
        delay: Duration,
    },
    ExponentialDelay {
        initial: Duration,
        max: Duration,
        multiplier: f64,
        reset_after: Duration,
        jitter: f64,
        attempts: u32,
    },
    FailureRate {
        max_failures: u32,
        interval: Duration,
        delay: Duration,
    },
}

/// Every key this module reads, for the SET validation.
pub const KEYS: &[&str] = &[
    "restart-strategy.type",
    "restart-strategy.fixed-delay.attempts",
    "restart-strategy.fixed-delay.delay",
    "restart-strategy.exponential-delay.initial-backoff",
    "restart-strategy.exponential-delay.max-backoff",
    "restart-strategy.exponential-delay.backoff-multiplier",
    "restart-strategy.exponential-delay.reset-backoff-threshold",
    "restart-strategy.exponential-delay.jitter-factor",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff",
    "restart-strategy.failure-rate.max-failures-per-interval",
    "restart-strategy.failure-rate.failure-rate-interval",
    "restart-strategy.failure-rate.delay",
];

struct Settings<'a>(&'a BTreeMap<String, String>);

impl Settings<'_> {
    fn duration(&self, key: &str, default: Duration) -> Result<Duration> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => parse_duration(v)
                .ok_or_else(|| Error::user(format!("'{key}' = '{v}' is not a duration; write e.g. '10 s' or '1 min'"))),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| Error::user(format!("'{key}' = '{v}' is not a valid number"))),
        }
    }
}

impl RestartStrategy {
    /// Reads the strategy from the SET configuration. Without `restart-strategy.type`, Flink's
    /// default applies: exponential delay when checkpointing is on, none otherwise.
    pub fn from_settings(settings: &BTreeMap<String, String>, checkpointing: bool) -> Result<Self> {
        let s = Settings(settings);
        let kind = match settings.get("restart-strategy.type") {
            Some(v) => v.trim().to_ascii_lowercase(),
            None if checkpointing => "exponential-delay".into(),
            None => "none".into(),
        };
        Ok(match kind.as_str() {
            "none" | "off" | "disable" => RestartStrategy::None,
            "fixed-delay" | "fixeddelay" => RestartStrategy::FixedDelay {
                attempts: s.number("restart-strategy.fixed-delay.attempts", 1)?,
                delay: s.duration("restart-strategy.fixed-delay.delay", Duration::from_secs(1))?,
            },
            "exponential-delay" | "exponentialdelay" => RestartStrategy::ExponentialDelay {
                initial: s.duration("restart-strategy.exponential-delay.initial-backoff", Duration::from_secs(1))?,
                max: s.duration("restart-strategy.exponential-delay.max-backoff", Duration::from_secs(60))?,
                multiplier: s.number("restart-strategy.exponential-delay.backoff-multiplier", 1.5)?,
                reset_after: s.duration("restart-strategy.exponential-delay.reset-backoff-threshold", Duration::from_secs(3600))?,
                jitter: s.number("restart-strategy.exponential-delay.jitter-factor", 0.1)?,
                attempts: s.number("restart-strategy.exponential-delay.attempts-before-reset-backoff", u32::MAX)?,
            },
            "failure-rate" | "failurerate" => RestartStrategy::FailureRate {
                max_failures: s.number("restart-strategy.failure-rate.max-failures-per-interval", 1)?,
                interval: s.duration("restart-strategy.failure-rate.failure-rate-interval", Duration::from_secs(60))?,
                delay: s.duration("restart-strategy.failure-rate.delay", Duration::from_secs(1))?,
            },
            other => {
                return Err(Error::user(format!(
                    "'restart-strategy.type' = '{other}' is not valid; expected none, fixed-delay, exponential-delay or failure-rate"
                )))
            }
        })
    }
}

/// The failures seen so far, deciding whether and when the next restart happens.
#[derive(Debug)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    failures: Vec<Instant>,
    backoff: Option<Duration>,
    last_failure: Option<Instant>,
}

impl RestartTracker {
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartTracker { strategy, failures: Vec::new(), backoff: None, last_failure: None }
    }

    /// Records a failure now; returns how long to wait before restarting, or `None` to give up.
    pub fn on_failure(&mut self, now: Instant) -> Option<Duration> {
        self.failures.push(now);
        let previous = self.last_failure.replace(now);
        match &self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (self.failures.len() as u32 <= *attempts).then_some(*delay)
            }
            RestartStrategy::FailureRate { max_failures, interval, delay } => {
                self.failures.retain(|t| now.duration_since(*t) <= *interval);
                (self.failures.len() as u32 <= *max_failures).then_some(*delay)
            }
            RestartStrategy::ExponentialDelay { initial, max, multiplier, reset_after, jitter, attempts } => {
                let quiet_long_enough = previous.is_some_and(|p| now.duration_since(p) >= *reset_after);
                if quiet_long_enough || self.failures.len() as u32 > *attempts {
                    self.failures.clear();
                    self.failures.push(now);
                    self.backoff = None;
                }
                let next = match self.backoff {
                    None => *initial,
                    Some(b) => b.mul_f64(*multiplier).min(*max),
                };
                self.backoff = Some(next);
                // Spread restarts of many jobs hitting the same outage.
                let spread = 1.0 + jitter * (2.0 * pseudo_random(now) - 1.0);
                Some(next.mul_f64(spread.max(0.0)).min(*max))
            }
        }
    }
}

fn pseudo_random(now: Instant) -> f64 {
    let nanos = now.elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let mixed = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_follow_flink() {
        assert_eq!(RestartStrategy::from_settings(&settings(&[]), false).unwrap(), RestartStrategy::None);
        assert!(matches!(
            RestartStrategy::from_settings(&settings(&[]), true).unwrap(),
            RestartStrategy::ExponentialDelay { multiplier, .. } if multiplier == 1.5
        ));
    }

    #[test]
    fn fixed_delay_gives_up_after_its_attempts() {
        let s = settings(&[
            ("restart-strategy.type", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "2"),
            ("restart-strategy.fixed-delay.delay", "3 s"),
        ]);
        let mut t = RestartTracker::new(RestartStrategy::from_settings(&s, true).unwrap());
        let now = Instant::now();
        assert_eq!(t.on_failure(now), Some(Duration::from_secs(3)));
        assert_eq!(t.on_failure(now), Some(Duration::from_secs(3)));
        assert_eq!(t.on_failure(now), None);
    }

    #[test]
    fn failure_rate_counts_only_recent_failures() {
        let s = settings(&[
            ("restart-strategy.type", "failure-rate"),
            ("restart-strategy.failure-rate.failure-rate-interval", "10 s"),
        ]);
        let mut t = RestartTracker::new(RestartStrategy::from_settings(&s, false).unwrap());
        let start = Instant::now();
        assert!(t.on_failure(start).is_some());
        assert!(t.on_failure(start + Duration::from_secs(1)).is_none());
        assert!(t.on_failure(start + Duration::from_secs(30)).is_some());
    }

    #[test]
    fn exponential_backoff_grows_to_its_cap() {
        let s = settings(&[
            ("restart-strategy.type", "exponential-delay"),
            ("restart-strategy.exponential-delay.initial-backoff", "1 s"),
            ("restart-strategy.exponential-delay.max-backoff", "4 s"),
            ("restart-strategy.exponential-delay.backoff-multiplier", "2"),
            ("restart-strategy.exponential-delay.jitter-factor", "0"),
        ]);
        let mut t = RestartTracker::new(RestartStrategy::from_settings(&s, true).unwrap());
        let now = Instant::now();
        let waits: Vec<_> = (0..4).map(|_| t.on_failure(now).unwrap().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 4]);
    }

    #[test]
    fn bad_values_are_user_errors() {
        let s = settings(&[("restart-strategy.type", "sometimes")]);
        assert!(RestartStrategy::from_settings(&s, true)
            .unwrap_err()
            .to_string()
            .contains("expected none, fixed-delay"));
        let s = settings(&[("restart-strategy.type", "fixed-delay"), ("restart-strategy.fixed-delay.delay", "soon")]);
        assert!(RestartStrategy::from_settings(&s, true).is_err());
    }
}

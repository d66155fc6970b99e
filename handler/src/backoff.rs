//! Adaptive backoff for polls and retries: starts short because most waits are short (an
//! instance goes from pending to running in 5-16 s, a detach takes seconds, and the heal's
//! first look, made as soon as the event arrives, may catch the old holder's detach in its
//! last moments), grows by half each time, and is capped so a long wait still notices the
//! change within a couple of seconds. The first polls come 50, 75, 112 ms ... apart: one
//! Lambda polling one resource stays far under the 20 Describe* calls a second at which EC2
//! refills a caller's bucket (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_millis(50);
pub const CAP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { next: INITIAL }
    }

    /// The delay to wait now; the following one is 1.5 times longer, at most [`CAP`].
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 3 / 2).min(CAP);
        delay
    }

    /// The delay [`next_delay`](Self::next_delay) would return, without advancing.
    pub fn peek(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_then_caps() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..11).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(
            delays,
            [50, 75, 112, 168, 253, 379, 569, 854, 1281, 1922, 2000]
        );
        assert_eq!(b.peek(), CAP);
    }

    #[test]
    fn twenty_seconds_of_waiting_takes_under_twenty_polls() {
        // The original slept a fixed 5 s: a 6 s wait cost 10 s. Here the overshoot past any
        // moment is at most one delay, i.e. at most 2 s, and short waits cost a few 100 ms.
        let mut b = Backoff::new();
        let mut t = Duration::ZERO;
        let mut polls = 0;
        while t < Duration::from_secs(20) {
            t += b.next_delay();
            polls += 1;
        }
        assert!((14..=19).contains(&polls), "{polls} polls");
        let mut b = Backoff::new();
        let first_second: Duration = (0..3).map(|_| b.next_delay()).sum();
        assert!(first_second < Duration::from_secs(1), "{first_second:?}");
    }
}

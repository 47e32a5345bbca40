//! Signs of life (`feed.md` revision 4): which heartbeats prove that the stream is
//! alive, that nothing before them was withheld, and that the gateway's clock is not
//! behind the authority's. A pure state machine: the caller hands it every message's
//! position and every authenticated heartbeat, with the clock's reading.
//!
//! Only a heartbeat that passed its check (its `mac`, with a feed key) reaches
//! [`Life::heartbeat`]; every other message, good or bad, reaches [`Life::message`] and
//! is never a sign of life: a frozen or late feed must not look fresh.

/// What one heartbeat proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// A sign of life: staleness is measured from now.
    Alive,
    /// Its `at` is not later than that of a heartbeat counted before (a replay).
    NotNewer,
    /// Its `at` is more than `stale_after` behind the gateway's clock.
    TooOld,
    /// Its `at` is more than `skew` ahead of the gateway's clock: the clock is behind.
    Ahead,
    /// Its `prev` does not match what the gateway processed: something was withheld.
    Gap,
}

impl Beat {
    /// A fixed label (logs and metrics).
    pub fn label(self) -> &'static str {
        match self {
            Beat::Alive => "alive",
            Beat::NotNewer => "not_newer",
            Beat::TooOld => "too_old",
            Beat::Ahead => "clock_behind",
            Beat::Gap => "feed_gap",
        }
    }
}

/// The clock limits a heartbeat is judged by, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How far behind the clock a heartbeat may be and still count.
    pub stale_after: u64,
    /// How far ahead of the clock a heartbeat may be before the clock is called behind.
    pub skew: u64,
}

/// The state of the stream's signs of life.
#[derive(Debug, Clone, Default)]
pub struct Life {
    /// The `at` of the newest heartbeat counted (the mark).
    newest: Option<i64>,
    /// The position of the last message processed, if known.
    last: Option<u64>,
    /// Whether a heartbeat with `prev` has set the reference since the start or a
    /// resume (the first one only sets it: feed.md).
    reference: bool,
    gap: bool,
    clock_behind: bool,
}

impl Life {
    /// A fresh state that resumes after `position` (0: from the stream's start).
    pub fn resuming_at(position: u64) -> Life {
        Life {
            last: (position > 0).then_some(position),
            ..Life::default()
        }
    }

    /// Records any message at `position` that is not an authenticated heartbeat
    /// (events, refused, empty or over-long lines alike): never a sign of life.
    pub fn message(&mut self, position: u64) {
        self.last = Some(position);
    }

    /// Judges an authenticated heartbeat at `position` carrying `at` and `prev`, with
    /// the gateway's clock at `now` (seconds since the epoch).
    pub fn heartbeat(
        &mut self,
        position: u64,
        at: i64,
        prev: Option<u64>,
        now: u64,
        window: Window,
    ) -> Beat {
        let before = self.last.replace(position);
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let ahead = at.saturating_sub(now) > i64::try_from(window.skew).unwrap_or(i64::MAX);
        if ahead {
            self.clock_behind = true;
            return Beat::Ahead;
        }
        let gap = match prev {
            Some(p) => {
                let shown =
                    self.reference && (p.checked_add(1) != Some(position) || before != Some(p));
                self.reference = true;
                shown
            }
            None => false,
        };
        if gap {
            self.gap = true;
            return Beat::Gap;
        }
        if now.saturating_sub(at) > i64::try_from(window.stale_after).unwrap_or(i64::MAX) {
            return Beat::TooOld;
        }
        if self.newest.is_some_and(|n| at <= n) {
            return Beat::NotNewer;
        }
        self.newest = Some(at);
        self.gap = false;
        self.clock_behind = false;
        Beat::Alive
    }

    /// A heartbeat showed a gap and no good one has come since.
    pub fn gap(&self) -> bool {
        self.gap
    }

    /// A heartbeat came from beyond the skew and no counted one has come since.
    pub fn clock_behind(&self) -> bool {
        self.clock_behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        stale_after: 30,
        skew: 30,
    };
    const NOW: u64 = 1_780_000_000;
    const AT: i64 = NOW as i64;

    #[test]
    fn only_newer_fresh_heartbeats_count() {
        let mut l = Life::default();
        assert_eq!(l.heartbeat(1, AT - 5, None, NOW, W), Beat::Alive);
        assert_eq!(l.heartbeat(2, AT - 5, None, NOW, W), Beat::NotNewer);
        assert_eq!(l.heartbeat(3, AT - 6, None, NOW, W), Beat::NotNewer);
        assert_eq!(l.heartbeat(4, AT - 31, None, NOW, W), Beat::TooOld);
        assert_eq!(l.heartbeat(5, AT - 30, None, NOW, W), Beat::NotNewer);
        assert_eq!(l.heartbeat(6, AT, None, NOW, W), Beat::Alive);
        l.message(7);
        assert_eq!(l.heartbeat(8, AT + 30, None, NOW, W), Beat::Alive);
    }

    #[test]
    fn a_heartbeat_from_the_future_means_the_clock_is_behind() {
        let mut l = Life::default();
        assert_eq!(l.heartbeat(1, AT + 31, None, NOW, W), Beat::Ahead);
        assert!(l.clock_behind());
        // A replay from the past does not clear it; a counted heartbeat does.
        assert_eq!(l.heartbeat(2, AT - 40, None, NOW, W), Beat::TooOld);
        assert!(l.clock_behind());
        assert_eq!(l.heartbeat(3, AT + 1, None, NOW, W), Beat::Alive);
        assert!(!l.clock_behind());
        // An ahead heartbeat does not raise the mark.
        assert_eq!(l.heartbeat(4, AT + 500, None, NOW, W), Beat::Ahead);
        assert_eq!(l.heartbeat(5, AT + 2, None, NOW, W), Beat::Alive);
    }

    #[test]
    fn a_withheld_message_shows_as_a_gap() {
        let mut l = Life::resuming_at(10);
        // The first heartbeat after a resume only sets the reference.
        assert_eq!(l.heartbeat(12, AT - 3, Some(9), NOW, W), Beat::Alive);
        l.message(13);
        assert_eq!(l.heartbeat(14, AT - 2, Some(13), NOW, W), Beat::Alive);
        // Message 15 withheld: the heartbeat at 16 says its predecessor was 15.
        assert_eq!(l.heartbeat(16, AT - 1, Some(15), NOW, W), Beat::Gap);
        assert!(l.gap());
        // Renumbered by a mirror: its position is not prev + 1.
        l.message(17);
        assert_eq!(l.heartbeat(18, AT, Some(18), NOW, W), Beat::Gap);
        assert!(l.gap());
        l.message(19);
        assert_eq!(l.heartbeat(20, AT, Some(19), NOW, W), Beat::Alive);
        assert!(!l.gap());
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut l = Life::default();
        assert_eq!(
            l.heartbeat(u64::MAX, i64::MAX, Some(u64::MAX), u64::MAX, W),
            Beat::Alive
        );
        assert_eq!(l.heartbeat(1, i64::MIN, Some(0), 0, W), Beat::Gap);
        let wide = Window {
            stale_after: u64::MAX,
            skew: u64::MAX,
        };
        assert_eq!(
            Life::default().heartbeat(1, i64::MIN, None, u64::MAX, wide),
            Beat::Alive
        );
    }
}

//! The process's phase for `/readyz`: starting until the server runs, ready, then draining once
//! SIGTERM/SIGINT arrives (load balancers take the instance out while in-flight calls finish).

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Ready,
    Draining,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Draining => "draining",
        }
    }
}

/// Shared by the routes (`web::Data<Lifecycle>`) and the shutdown task.
#[derive(Debug, Default)]
pub struct Lifecycle {
    phase: AtomicU8,
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Starting -> ready (never back from draining).
    pub fn set_ready(&self) {
        let _ = self
            .phase
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn set_draining(&self) {
        self.phase.store(2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let l = Lifecycle::default();
        assert_eq!(l.phase(), Phase::Starting);
        l.set_ready();
        assert_eq!(l.phase(), Phase::Ready);
        l.set_draining();
        l.set_ready();
        assert_eq!(l.phase(), Phase::Draining);
    }
}

//! One memory budget for every request body held at once (issue 9: bounded
//! under attack). A body is charged as it arrives, in KiB units, and released
//! when its request ends; a request that would exceed the budget is answered
//! 503 `SERVER_BUSY` instead of growing the process.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const UNIT: usize = 1024;

/// The shared budget.
#[derive(Clone)]
pub struct BodyBudget {
    sem: Arc<Semaphore>,
    total_units: usize,
}

/// What one request holds; released on drop.
#[derive(Default)]
pub struct Charge {
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl BodyBudget {
    /// A budget of `bytes` (rounded up to whole KiB).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        BodyBudget {
            sem: Arc::new(Semaphore::new(units)),
            total_units: units,
        }
    }

    /// Bytes not charged to any request now.
    pub fn available_bytes(&self) -> usize {
        self.sem.available_permits() * UNIT
    }

    /// The whole budget, bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_units * UNIT
    }

    /// Charge `more` bytes to `charge`; false when the budget cannot hold them
    /// (nothing is charged then).
    pub fn charge(&self, charge: &mut Charge, more: usize) -> bool {
        let before = charge.bytes.div_ceil(UNIT);
        let after = (charge.bytes + more).div_ceil(UNIT);
        let need = after - before;
        if need > 0 {
            let Ok(n) = u32::try_from(need) else {
                return false;
            };
            match self.sem.clone().try_acquire_many_owned(n) {
                Ok(p) => match &mut charge.permit {
                    Some(held) => held.merge(p),
                    None => charge.permit = Some(p),
                },
                Err(_) => return false,
            }
        }
        charge.bytes += more;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_released_on_drop() {
        let b = BodyBudget::new(10 * 1024);
        let mut a = Charge::default();
        assert!(b.charge(&mut a, 6 * 1024));
        let mut c = Charge::default();
        assert!(!b.charge(&mut c, 5 * 1024), "over the budget");
        assert!(b.charge(&mut c, 4 * 1024));
        assert_eq!(b.available_bytes(), 0);
        drop(a);
        assert_eq!(b.available_bytes(), 6 * 1024);
        // Small chunks are charged by the KiB they start.
        let mut d = Charge::default();
        for _ in 0..100 {
            assert!(b.charge(&mut d, 10));
        }
        assert_eq!(b.available_bytes(), 5 * 1024);
    }
}

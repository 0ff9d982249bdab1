//! The count of immediate requeues per delivery, which bounds a requeue loop: past the limit
//! the delivery is parked (`process::park`).

/// How many times in a row each delivery was put back for immediate redelivery by this worker.
/// A nack cannot change the message, so the count is kept here, by task (or body): it bounds
/// the loop per worker, and a delivery that reaches the limit is parked instead.
pub struct Requeues {
    pub(crate) max: u32,
    counts: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// Entries kept at most: a delivery requeued here and then finished by another worker leaves
/// its count behind, so the map is emptied rather than allowed to grow.
const MAX_REQUEUE_ENTRIES: usize = 10_000;

impl Requeues {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            counts: std::sync::Mutex::default(),
        }
    }

    /// Counts one more requeue of `key`; returns the count.
    pub(crate) fn count(&self, key: &str) -> u32 {
        let mut counts = self.counts.lock().expect("requeue counts");
        if counts.len() >= MAX_REQUEUE_ENTRIES && !counts.contains_key(key) {
            counts.clear();
        }
        let count = counts.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count
    }

    pub(crate) fn forget(&self, key: &str) {
        self.counts.lock().expect("requeue counts").remove(key);
    }
}

/// A cheap hash (FNV-1a) of a body that is not a task message, to count its requeues.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

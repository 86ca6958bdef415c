//! How much `put` and `copy` hold in flight at once.

/// A bound on writes in flight: at most `max_count` of them and
/// `max_bytes` of model data, except that one write always fits (a model
/// larger than the byte bound goes alone).
#[derive(Debug)]
pub struct InFlight {
    max_count: usize,
    max_bytes: u64,
    count: usize,
    bytes: u64,
}

impl InFlight {
    /// Room for `max_count` writes and `max_bytes` of model data.
    pub fn new(max_count: usize, max_bytes: u64) -> Self {
        InFlight {
            max_count,
            max_bytes,
            count: 0,
            bytes: 0,
        }
    }

    /// Whether a write of `bytes` may start now.
    pub fn has_room_for(&self, bytes: u64) -> bool {
        self.count == 0 || (self.count < self.max_count && self.bytes + bytes <= self.max_bytes)
    }

    /// A write of `bytes` started.
    pub fn start(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }

    /// A write of `bytes` ended.
    pub fn end(&mut self, bytes: u64) {
        self.count -= 1;
        self.bytes -= bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_write_always_fits_however_large() {
        let budget = InFlight::new(4, 100);
        assert!(budget.has_room_for(1000));
    }

    #[test]
    fn writes_start_until_the_count_or_the_bytes_run_out() {
        let mut budget = InFlight::new(2, 100);
        budget.start(10);
        assert!(budget.has_room_for(90), "exactly the byte bound fits");
        assert!(!budget.has_room_for(91), "one byte more does not");
        budget.start(10);
        assert!(!budget.has_room_for(0), "the count bound is reached");
        budget.end(10);
        assert!(budget.has_room_for(90));
        budget.end(10);
        assert!(budget.has_room_for(1000), "empty again: anything fits");
    }
}

//! The cursor of a `SCAN` over every master of a cluster, with no state in the gateway (so
//! any gateway of several behind a balancer continues a scan): one unsigned 64-bit number, as
//! Redis's own, that packs which master the scan is on (its place in the masters ordered by
//! their first slot), a tag of that master's address, and the master's own cursor. The scan
//! walks the masters one after the other; `0` starts it and ends it, as on one Redis.
//!
//! A master that is no longer the one the cursor was made on (a failover, resharding) is
//! scanned again from its start: its own cursor would mean nothing there (each Redis orders
//! its table by a seed of its own). Keys may then come twice — which SCAN's own contract
//! allows and every caller handles — but none is missed.

/// Bits of the packed cursor below the master's own cursor: its place (8) and tag (8).
const SHIFT: u32 = 16;

/// A position in a whole-cluster scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanCursor {
    /// The master's place in the topology's masters.
    pub master: usize,
    /// [`tag_of`] the master's address when the cursor was made.
    pub tag: u8,
    /// The master's own `SCAN` cursor.
    pub node_cursor: u64,
}

/// Why a cursor is not one this gateway hands out (or cannot be packed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("ERR invalid cursor")]
    NotANumber,
    #[error("ERR the cluster has more than 256 masters; the gateway's SCAN cursor names at most 256")]
    TooManyMasters,
    #[error("ERR a master's SCAN cursor ({0}) is too large for the gateway's composite cursor")]
    TooLarge(u64),
}

/// A tag of a master's address: a different master at the same place restarts its scan.
pub fn tag_of(address: &str) -> u8 {
    address.bytes().fold(0x5au8, |tag, byte| tag.rotate_left(3) ^ byte)
}

impl ScanCursor {
    /// The start of a scan.
    pub const START: ScanCursor = ScanCursor { master: 0, tag: 0, node_cursor: 0 };

    pub fn parse(text: &[u8]) -> Result<Self, CursorError> {
        let packed: u64 = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or(CursorError::NotANumber)?;
        Ok(Self { master: (packed & 0xff) as usize, tag: ((packed >> 8) & 0xff) as u8, node_cursor: packed >> SHIFT })
    }

    pub fn pack(&self) -> Result<u64, CursorError> {
        if self.master > 0xff {
            return Err(CursorError::TooManyMasters);
        }
        if self.node_cursor >> (64 - SHIFT) != 0 {
            return Err(CursorError::TooLarge(self.node_cursor));
        }
        Ok(self.node_cursor << SHIFT | u64::from(self.tag) << 8 | self.master as u64)
    }

    /// The master's own cursor to send it: `0` when the cursor was made on another master.
    pub fn node_cursor_at(&self, address: &str) -> u64 {
        if self.tag == tag_of(address) {
            self.node_cursor
        } else {
            0
        }
    }

    /// The cursor after the master at `addresses[self.master]` answered `node_cursor`: on the
    /// same master, the next master's start, or `0` (the end) after the last.
    pub fn after(&self, node_cursor: u64, addresses: &[&str]) -> ScanCursor {
        if node_cursor != 0 {
            let tag = addresses.get(self.master).map(|a| tag_of(a)).unwrap_or(0);
            return ScanCursor { master: self.master, tag, node_cursor };
        }
        match addresses.get(self.master + 1) {
            Some(next) => ScanCursor { master: self.master + 1, tag: tag_of(next), node_cursor: 0 },
            None => ScanCursor::START,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTERS: [&str; 3] = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];

    #[test]
    fn a_scan_walks_every_master_and_ends_at_zero() {
        let mut cursor = ScanCursor::parse(b"0").unwrap();
        assert_eq!(cursor, ScanCursor::START);
        let mut visited = Vec::new();
        for answer in [17, 0, 0, 5, 0] {
            visited.push((cursor.master, cursor.node_cursor_at(MASTERS[cursor.master])));
            cursor = cursor.after(answer, &MASTERS);
            let packed = cursor.pack().unwrap();
            assert_eq!(ScanCursor::parse(packed.to_string().as_bytes()).unwrap(), cursor);
            if packed == 0 {
                break;
            }
            assert_ne!(packed, 0, "only the end is 0");
        }
        assert_eq!(visited, [(0, 0), (0, 17), (1, 0), (2, 0), (2, 5)]);
        assert_eq!(cursor.pack(), Ok(0), "the end");
    }

    #[test]
    fn another_master_at_the_same_place_is_scanned_from_its_start() {
        let cursor = ScanCursor::START.after(17, &MASTERS);
        assert_eq!(cursor.node_cursor_at(MASTERS[0]), 17);
        assert_eq!(cursor.node_cursor_at("127.0.0.1:7004"), 0, "a failover replaced the master");
    }

    #[test]
    fn bad_and_oversized_cursors_are_errors() {
        assert_eq!(ScanCursor::parse(b"abc"), Err(CursorError::NotANumber));
        assert_eq!(ScanCursor::parse(b"-1"), Err(CursorError::NotANumber));
        let huge = ScanCursor { master: 0, tag: 0, node_cursor: 1 << 50 };
        assert_eq!(huge.pack(), Err(CursorError::TooLarge(1 << 50)));
    }
}

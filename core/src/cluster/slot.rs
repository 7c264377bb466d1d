//! Which of Redis Cluster's 16384 hash slots a key belongs to: CRC16 (XMODEM) of the key, or of
//! its hash tag — the part between the first `{` and the next `}`, when not empty — modulo
//! 16384, as the cluster specification defines it.

/// How many hash slots a Redis Cluster has.
pub const SLOTS: u16 = 16384;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The hash slot of `key`.
pub fn slot_of(key: &[u8]) -> u16 {
    CRC16.checksum(hashed_part(key)) % SLOTS
}

/// The part of a key that is hashed: its hash tag if it has a non-empty one, else all of it.
fn hashed_part(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else { return key };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_what_redis_answers_for_cluster_keyslot() {
        // `CLUSTER KEYSLOT` of a Redis 7.0 cluster.
        assert_eq!(slot_of(b"a"), 15495);
        assert_eq!(slot_of(b"b"), 3300);
        assert_eq!(slot_of(b"x1"), 10114);
        assert_eq!(slot_of(b"123456789"), 12739);
    }

    #[test]
    fn a_hash_tag_decides_the_slot_unless_it_is_empty() {
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}".as_slice()));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }
}

//! Framing of WAL records: each one carries its length, its type and a
//! CRC32C, so recovery can tell a complete record from a torn or damaged
//! one.
//!
//! ```text
//! +-------------+-------------+--------+-----------------+
//! | length: u32 | crc32c: u32 | type   | payload         |
//! | LE, payload | of type and | u8     | `length` bytes  |
//! | bytes only  | payload, LE |        |                 |
//! +-------------+-------------+--------+-----------------+
//! ```
//!
//! Type 0 is never written, so a header of zeros — what a preallocated
//! segment holds past its last record — reads as the end of the log, not as
//! a record.

use std::fmt;

/// Bytes of a record header: length, checksum, type.
pub const HEADER_LEN: usize = 9;

/// The largest payload a record may carry. A length field beyond it can
/// only be damage, so a reader never trusts it to size a buffer.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// The first record of every segment: format and position
    /// ([`crate::wal`]'s `SegmentHeader`).
    SegmentHeader = 1,
    /// One log entry (a prost `Entry`).
    Entry = 2,
    /// The hard state (a prost `HardState`).
    HardState = 3,
    /// A snapshot file was saved (a prost `SnapshotMetadata`): the newest
    /// one named is the one to load.
    Snapshot = 4,
    /// The log up to an index is discarded ([`crate::wal`]'s
    /// `CompactMarker`).
    Compact = 5,
}

impl RecordType {
    fn from_byte(b: u8) -> Option<RecordType> {
        Some(match b {
            1 => RecordType::SegmentHeader,
            2 => RecordType::Entry,
            3 => RecordType::HardState,
            4 => RecordType::Snapshot,
            5 => RecordType::Compact,
            _ => return None,
        })
    }
}

/// Appends one record of type `kind` holding `payload` to `buf`.
///
/// # Panics
/// If `payload` is longer than [`MAX_PAYLOAD`]: callers bound what they
/// frame (an entry that large is refused before it gets here).
pub fn encode(buf: &mut Vec<u8>, kind: RecordType, payload: &[u8]) {
    assert!(
        payload.len() <= MAX_PAYLOAD,
        "invariant broken: a {} byte record payload passed the caller's bound",
        payload.len()
    );
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind as u8]), payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
}

/// Appends a record whose payload is the prost encoding of `msg`.
pub fn encode_message(buf: &mut Vec<u8>, kind: RecordType, msg: &impl prost::Message) {
    let start = buf.len();
    buf.resize(start + HEADER_LEN, 0);
    msg.encode(buf)
        .expect("invariant broken: a Vec grows to hold any message");
    let len = buf.len() - start - HEADER_LEN;
    assert!(
        len <= MAX_PAYLOAD,
        "invariant broken: a {len} byte record payload passed the caller's bound"
    );
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind as u8]), &buf[start + HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    buf[start + 8] = kind as u8;
}

/// A record read back: its type, where it starts, and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// What it holds.
    pub kind: RecordType,
    /// The offset of its header in the buffer read.
    pub offset: usize,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why reading stopped before the end of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Where the bad record starts.
    pub offset: usize,
    /// What is wrong with it.
    pub reason: String,
    /// Whether everything from `offset` on could be a write cut short: the
    /// record runs past the end, or only zeros follow it. A torn tail is
    /// expected after a crash; anything else is damage.
    pub torn: bool,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Reads the records of a buffer in order.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Where the next record would start: after a clean end, the length
    /// of the valid prefix.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next record; `Ok(None)` at the end (the buffer's end, or a
    /// header of zeros); an error for a record that is cut short or fails
    /// its checks, after which the reader stays put.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>, BadRecord> {
        let rest = &self.buf[self.pos..];
        // Zeros (a full header's worth, or all that is left) are the
        // unwritten rest of a preallocated segment.
        if rest[..rest.len().min(HEADER_LEN)].iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if rest.len() < HEADER_LEN {
            return Err(self.bad(format!("a {}-byte fragment of a record header", rest.len())));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let kind_byte = rest[8];
        if len > MAX_PAYLOAD {
            return Err(self.bad(format!(
                "record length {len} exceeds the limit {MAX_PAYLOAD}"
            )));
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            return Err(self.bad(format!(
                "record of {len} bytes cut short at {} bytes",
                rest.len() - HEADER_LEN
            )));
        };
        let actual = crc32c::crc32c_append(crc32c::crc32c(&[kind_byte]), payload);
        if actual != crc {
            return Err(self.bad(format!(
                "checksum mismatch (stored {crc:08x}, computed {actual:08x})"
            )));
        }
        let Some(kind) = RecordType::from_byte(kind_byte) else {
            return Err(self.bad(format!("unknown record type {kind_byte}")));
        };
        let record = Record {
            kind,
            offset: self.pos,
            payload,
        };
        self.pos += HEADER_LEN + len;
        Ok(Some(record))
    }

    /// A [`BadRecord`] at the current position, judged torn or damaged.
    ///
    /// A crash in the middle of a write leaves a prefix of it, and the
    /// unwritten rest reads as zeros (segments are preallocated). So a bad
    /// record is taken as torn when no valid record starts anywhere after
    /// it. If one does, the bad bytes sit before data that was written
    /// after them: damage, which recovery must not cut away. (Damage to the
    /// very last record looks like a torn write and is cut; nothing can
    /// tell the two apart.)
    fn bad(&self, reason: String) -> BadRecord {
        let rest = &self.buf[self.pos..];
        let written = rest.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let torn = !(1..written).any(|off| valid_record_at(&rest[off..]));
        BadRecord {
            offset: self.pos,
            reason,
            torn,
        }
    }
}

/// Whether `buf` starts with a complete record that passes its checks.
fn valid_record_at(buf: &[u8]) -> bool {
    if buf.len() < HEADER_LEN || RecordType::from_byte(buf[8]).is_none() {
        return false;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN.saturating_add(len)) else {
        return false;
    };
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    crc32c::crc32c_append(crc32c::crc32c(&buf[8..9]), payload) == crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, RecordType::Entry, b"first");
        encode(&mut buf, RecordType::HardState, b"second record");
        buf
    }

    #[test]
    fn records_round_trip_and_zeros_end_the_log() {
        let mut buf = two_records();
        buf.extend_from_slice(&[0; 64]);
        let mut r = Reader::new(&buf);
        let a = r.next_record().unwrap().unwrap();
        assert_eq!(
            (a.kind, a.offset, a.payload),
            (RecordType::Entry, 0, &b"first"[..])
        );
        let b = r.next_record().unwrap().unwrap();
        assert_eq!(
            (b.kind, b.payload),
            (RecordType::HardState, &b"second record"[..])
        );
        assert_eq!(r.next_record(), Ok(None));
        assert_eq!(r.position(), 2 * HEADER_LEN + 5 + 13);
    }

    #[test]
    fn encode_message_matches_encode() {
        let hs = rudder_raft::HardState {
            term: 3,
            vote: 2,
            commit: 9,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_message(&mut a, RecordType::HardState, &hs);
        encode(
            &mut b,
            RecordType::HardState,
            &prost::Message::encode_to_vec(&hs),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn every_truncation_of_the_last_record_is_torn() {
        let full = two_records();
        let second = HEADER_LEN + 5;
        for cut in second + 1..full.len() {
            for padding in [0, 100] {
                let mut buf = full[..cut].to_vec();
                buf.resize(cut + padding, 0);
                let mut r = Reader::new(&buf);
                assert!(r.next_record().unwrap().is_some());
                let err = r.next_record().unwrap_err();
                assert_eq!(err.offset, second, "cut at {cut}");
                assert!(err.torn, "cut at {cut}, padding {padding}: {err}");
            }
        }
    }

    #[test]
    fn damage_followed_by_data_is_not_torn() {
        let mut buf = two_records();
        buf[HEADER_LEN + 1] ^= 0x10; // inside the first payload
        let err = Reader::new(&buf).next_record().unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.reason.contains("checksum"), "{err}");
        assert!(
            !err.torn,
            "a valid record follows: damage, not a torn write"
        );
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let full = two_records();
        for byte in 0..full.len() {
            for bit in 0..8 {
                let mut buf = full.clone();
                buf[byte] ^= 1 << bit;
                let mut r = Reader::new(&buf);
                let outcome = (r.next_record(), r.next_record());
                let clean = matches!(outcome, (Ok(Some(_)), Ok(Some(_))))
                    && r.next_record() == Ok(None)
                    && r.position() == full.len();
                assert!(!clean, "flip of bit {bit} in byte {byte} went unnoticed");
            }
        }
    }

    #[test]
    fn fewer_zeros_than_a_header_end_the_log_too() {
        let mut buf = two_records();
        let end = buf.len();
        buf.extend_from_slice(&[0; 5]);
        let mut r = Reader::new(&buf);
        while r.next_record().unwrap().is_some() {}
        assert_eq!(r.position(), end);
    }

    #[test]
    fn lengths_past_the_limit_are_refused_without_allocating() {
        let mut buf = vec![0xff; HEADER_LEN];
        buf.extend_from_slice(b"junk");
        let err = Reader::new(&buf).next_record().unwrap_err();
        assert!(err.reason.contains("exceeds"), "{err}");
    }
}

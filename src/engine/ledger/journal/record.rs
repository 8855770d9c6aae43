//! The journal's on-disk format: a segment header and length-prefixed,
//! checksummed records. Pure functions over bytes, no IO.
//!
//! A segment starts with a 32-byte header: the magic `SWBDJRNL`, the format
//! version (u32, little-endian), 4 reserved bytes, the segment's number (u64),
//! the CRC-32 of those 24 bytes, 4 zero bytes. Records follow, each
//! `len: u32 | crc: u32 | payload[len]` (little-endian), where `crc` is the
//! CRC-32 of the four length bytes and the payload, and the payload is one
//! usage event as JSON. The rest of a preallocated segment is zeros: a zero
//! length ends the data. A record cut by a crash (a length past the end, a
//! checksum that does not match) is torn: it and everything after it in that
//! segment is ignored, never misread.

use crate::domain::UsageEvent;

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SWBDJRNL";
/// The version of this format.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: u64 = 32;
/// Bytes before a record's payload (length and checksum).
pub const RECORD_HEAD: usize = 8;
/// The largest payload a record may have (an event is a few hundred bytes;
/// anything larger is a torn or foreign length).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Why a segment's header was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a Switchboard journal segment")]
    NotASegment,
    #[error("journal segment format version {0} (this build reads version {VERSION}); open it with a newer Switchboard")]
    NewerVersion(u32),
    #[error("the journal segment's header is damaged")]
    Damaged,
}

/// A segment's header.
pub fn encode_header(segment: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&segment.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The segment number a header names.
pub fn decode_header(b: &[u8]) -> Result<u64, HeaderError> {
    if b.len() < HEADER_LEN as usize || b[..8] != MAGIC {
        return Err(HeaderError::NotASegment);
    }
    let word = |r: std::ops::Range<usize>| b.get(r).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_le_bytes).unwrap_or(0);
    let crc = word(24..28);
    if crc32fast::hash(&b[..24]) != crc {
        return Err(HeaderError::Damaged);
    }
    let version = word(8..12);
    if version != VERSION {
        return Err(HeaderError::NewerVersion(version));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[16..24]);
    Ok(u64::from_le_bytes(n))
}

/// Appends `event`'s record to `out`; returns its length in bytes.
pub fn encode_record(event: &UsageEvent, out: &mut Vec<u8>) -> Result<usize, serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEAD]);
    serde_json::to_writer(&mut *out, event)?;
    let len = out.len() - start - RECORD_HEAD;
    // An event's JSON is far below MAX_PAYLOAD (its strings are bounded by the gateway).
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len32.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&len32.to_le_bytes());
    h.update(&out[start + RECORD_HEAD..]);
    let crc = h.finalize();
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

/// What the bytes at a record's position hold.
#[derive(Debug, Clone, PartialEq, Eq)]
// One value at a time, its event moved out at once: a box would cost an
// allocation per record read.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// A complete record of `len` bytes (head included).
    Record { event: UsageEvent, len: usize },
    /// A complete record (its checksum matches) whose payload is not an event
    /// this build can read: skipped, and logged by the reader.
    Unreadable { len: usize, error: String },
    /// Zeros (the preallocated rest of the segment) or the end of the bytes.
    End,
    /// A record cut short or damaged: the data of this segment ends here.
    Torn,
}

/// Decodes the record at the start of `b`.
pub fn decode_record(b: &[u8]) -> Decoded {
    if b.len() < 4 {
        return if b.iter().all(|x| *x == 0) { Decoded::End } else { Decoded::Torn };
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&b[..4]);
    let len = u32::from_le_bytes(l) as usize;
    if len == 0 {
        // A zero length is the preallocated rest, unless something follows it
        // in the head (a torn write that only reached the checksum).
        return if b.len() >= RECORD_HEAD && b[4..RECORD_HEAD].iter().any(|x| *x != 0) { Decoded::Torn } else { Decoded::End };
    }
    if len > MAX_PAYLOAD || b.len() < RECORD_HEAD + len {
        return Decoded::Torn;
    }
    let mut c = [0u8; 4];
    c.copy_from_slice(&b[4..8]);
    let payload = &b[RECORD_HEAD..RECORD_HEAD + len];
    let mut h = crc32fast::Hasher::new();
    h.update(&l);
    h.update(payload);
    if h.finalize() != u32::from_le_bytes(c) {
        return Decoded::Torn;
    }
    match serde_json::from_slice::<UsageEvent>(payload) {
        Ok(event) => Decoded::Record { event, len: RECORD_HEAD + len },
        Err(e) => Decoded::Unreadable { len: RECORD_HEAD + len, error: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageStatus};
    use chrono::{TimeZone, Utc};

    pub(crate) fn event(id: &str) -> UsageEvent {
        UsageEvent {
            saved: crate::domain::Micros::ZERO,
            event_id: id.into(),
            request_id: format!("req-{id}"),
            idempotency_key: None,
            ts: Utc.with_ymd_and_hms(2026, 6, 6, 12, 0, 0).unwrap(),
            supplier_id: SupplierId(3),
            account_id: None,
            provider: ProviderKind::OpenAi,
            model: "gpt-4o-mini".into(),
            request_type: RequestType::EmailTemplate,
            route: Route::Platform,
            usage: TokenUsage { input: 12, output: 7, ..Default::default() },
            cost: Micros(42),
            latency_ms: 9,
            status: UsageStatus::Ok,
            error_class: None,
        }
    }

    #[test]
    fn a_record_round_trips_and_says_its_length() {
        let mut buf = Vec::new();
        let n = encode_record(&event("a"), &mut buf).unwrap();
        assert_eq!(n, buf.len());
        buf.extend_from_slice(&[0u8; 64]);
        assert_eq!(decode_record(&buf), Decoded::Record { event: event("a"), len: n });
        assert_eq!(decode_record(&buf[n..]), Decoded::End, "the zeros after it end the data");
    }

    #[test]
    fn every_cut_of_a_record_is_torn_or_the_end_never_a_record() {
        let mut buf = Vec::new();
        let n = encode_record(&event("cut"), &mut buf).unwrap();
        for cut in 0..n {
            let d = decode_record(&buf[..cut]);
            assert!(matches!(d, Decoded::Torn | Decoded::End), "cut at {cut}: {d:?}");
            // Cut, then the preallocated zeros after it.
            let mut z = buf[..cut].to_vec();
            z.resize(n + 16, 0);
            let d = decode_record(&z);
            assert!(matches!(d, Decoded::Torn | Decoded::End), "cut at {cut} then zeros: {d:?}");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_torn() {
        let mut buf = Vec::new();
        let n = encode_record(&event("flip"), &mut buf).unwrap();
        for i in 0..n {
            for bit in [0x01u8, 0x80] {
                let mut b = buf.clone();
                b[i] ^= bit;
                let d = decode_record(&b);
                assert!(!matches!(d, Decoded::Record { .. } | Decoded::Unreadable { .. }), "byte {i} bit {bit:#x}: {d:?}");
            }
        }
    }

    #[test]
    fn a_checksummed_record_that_is_not_an_event_is_unreadable_not_torn() {
        let payload = b"{\"not\":\"an event\"}";
        let mut b = (payload.len() as u32).to_le_bytes().to_vec();
        let mut h = crc32fast::Hasher::new();
        h.update(&b);
        h.update(payload);
        b.extend_from_slice(&h.finalize().to_le_bytes());
        b.extend_from_slice(payload);
        assert!(matches!(decode_record(&b), Decoded::Unreadable { len, .. } if len == b.len()));
    }

    #[test]
    fn headers_are_checked_for_magic_version_and_damage() {
        let h = encode_header(77);
        assert_eq!(decode_header(&h), Ok(77));
        assert_eq!(decode_header(&[0u8; 32]), Err(HeaderError::NotASegment));
        assert_eq!(decode_header(&h[..20]), Err(HeaderError::NotASegment));
        let mut d = h;
        d[17] ^= 1;
        assert_eq!(decode_header(&d), Err(HeaderError::Damaged));
        let mut v = h;
        v[8] = 2;
        let crc = crc32fast::hash(&v[..24]);
        v[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&v), Err(HeaderError::NewerVersion(2)));
    }

    #[test]
    fn an_oversized_length_is_torn_not_an_allocation() {
        let mut b = vec![0xFFu8; 16];
        b[..4].copy_from_slice(&(u32::MAX).to_le_bytes());
        assert_eq!(decode_record(&b), Decoded::Torn);
    }
}

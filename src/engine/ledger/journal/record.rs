//! The journal's on-disk format: a segment header and length-prefixed,
//! checksummed records. Pure functions over bytes, no IO.
//!
//! A segment starts with a 32-byte header: the magic `SWBDJRNL`, the format
//! version (u32, little-endian), 4 reserved bytes, the segment's number (u64),
//! the CRC-32 of those 24 bytes, 4 zero bytes. Records follow, each
//! `len: u32 | crc: u32 | payload[len]` (little-endian), where `crc` is the
//! CRC-32 of the four length bytes and the payload. The rest of a preallocated
//! segment is zeros: a zero length ends the data. A record cut by a crash (a
//! length past the end, a checksum that does not match) is torn: it and
//! everything after it in that segment is ignored, never misread.
//!
//! The payload is one usage event, in the layout of the segment's version:
//! - **version 2** (written by this build): fixed-width little-endian fields
//!   in [`UsageEvent`]'s order, strings as `len u32 | UTF-8`, optional values
//!   behind a `0`/`1` byte, enums by their stable names (the ones the database
//!   stores), the timestamp as Unix seconds (i64) and nanoseconds (u32) — see
//!   [`encode_event`]. Decoding it allocates only the event's own strings;
//! - **version 1** (written before): the event as JSON. Still read, so a
//!   journal left by an older build is folded by a newer one.

use crate::domain::{AccountId, Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SWBDJRNL";
/// The version of the format this build writes.
pub const VERSION: u32 = 2;
/// The first version, whose payloads are JSON (read, no longer written).
pub const VERSION_JSON: u32 = 1;
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
    #[error("journal segment format version {0} (this build reads versions {VERSION_JSON} to {VERSION}); open it with a newer Switchboard")]
    NewerVersion(u32),
    #[error("the journal segment's header is damaged")]
    Damaged,
}

/// What a segment's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub segment: u64,
    /// The layout of its records' payloads.
    pub version: u32,
}

/// A segment's header, in the format this build writes.
pub fn encode_header(segment: u64) -> [u8; HEADER_LEN as usize] {
    encode_header_version(segment, VERSION)
}

/// A segment's header naming format `version` (tests write older segments).
pub fn encode_header_version(segment: u64, version: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&segment.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The segment number and format version a header names.
pub fn decode_header(b: &[u8]) -> Result<Header, HeaderError> {
    if b.len() < HEADER_LEN as usize || b[..8] != MAGIC {
        return Err(HeaderError::NotASegment);
    }
    let word = |r: std::ops::Range<usize>| b.get(r).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_le_bytes).unwrap_or(0);
    let crc = word(24..28);
    if crc32fast::hash(&b[..24]) != crc {
        return Err(HeaderError::Damaged);
    }
    let version = word(8..12);
    if version < VERSION_JSON {
        // No build wrote version 0: a foreign file with our magic.
        return Err(HeaderError::NotASegment);
    }
    if version > VERSION {
        return Err(HeaderError::NewerVersion(version));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[16..24]);
    Ok(Header { segment: u64::from_le_bytes(n), version })
}

/// Appends `event`'s record (format [`VERSION`]) to `out`; returns its length
/// in bytes. The record is always one a reader takes: an event whose payload
/// would exceed [`MAX_PAYLOAD`] (which a reader takes for a torn length, and
/// would not read past) is written with its strings clipped to
/// [`CLIPPED_STRING`] bytes each, and logged in full first. (The gateway
/// bounds what clients send — request ids, idempotency keys, known models —
/// far below this; this is the journal's own guarantee.)
pub fn encode_record(event: &UsageEvent, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let n = frame(out, |out| encode_event(event, out));
    if n - RECORD_HEAD <= MAX_PAYLOAD {
        return n;
    }
    out.truncate(start);
    tracing::warn!(event = ?event, bytes = n, "a usage event too large for the journal is recorded with its strings clipped");
    frame(out, |out| encode_event(&clipped(event), out))
}

/// The most bytes of each string a clipped event keeps ([`encode_record`]).
pub const CLIPPED_STRING: usize = 4096;

/// `event` with each string cut to at most [`CLIPPED_STRING`] bytes (at a
/// character boundary).
fn clipped(event: &UsageEvent) -> UsageEvent {
    fn clip(s: &str) -> String {
        let mut end = s.len().min(CLIPPED_STRING);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    }
    UsageEvent {
        event_id: clip(&event.event_id),
        request_id: clip(&event.request_id),
        idempotency_key: event.idempotency_key.as_deref().map(clip),
        model: clip(&event.model),
        error_class: event.error_class.as_deref().map(clip),
        ..event.clone()
    }
}

/// Appends `event`'s record as format 1 ([`VERSION_JSON`]) wrote it, the
/// event as JSON; returns its length in bytes. Not written any more: for
/// tests and benchmarks of journals older builds left.
pub fn encode_record_json(event: &UsageEvent, out: &mut Vec<u8>) -> Result<usize, serde_json::Error> {
    let mut failed = None;
    let n = frame(out, |out| failed = serde_json::to_writer(out, event).err());
    failed.map_or(Ok(n), Err)
}

/// Appends a record whose payload `payload` writes, with its length and
/// checksum; returns its length in bytes.
fn frame(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEAD]);
    payload(out);
    let len = out.len() - start - RECORD_HEAD;
    // At most MAX_PAYLOAD: encode_record clips an event that would exceed it.
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len32.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&len32.to_le_bytes());
    h.update(&out[start + RECORD_HEAD..]);
    let crc = h.finalize();
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// Version 2's payload: every field of the event, in its declaration order.
pub fn encode_event(e: &UsageEvent, out: &mut Vec<u8>) {
    put_str(out, &e.event_id);
    put_str(out, &e.request_id);
    put_opt_str(out, e.idempotency_key.as_deref());
    out.extend_from_slice(&e.ts.timestamp().to_le_bytes());
    out.extend_from_slice(&e.ts.timestamp_subsec_nanos().to_le_bytes());
    out.extend_from_slice(&e.supplier_id.0.to_le_bytes());
    match e.account_id {
        Some(a) => {
            out.push(1);
            out.extend_from_slice(&a.0.to_le_bytes());
        }
        None => out.push(0),
    }
    put_str(out, e.provider.as_str());
    put_str(out, &e.model);
    put_str(out, e.request_type.as_str());
    put_str(out, e.route.as_str());
    let u = &e.usage;
    for n in [u.input, u.output, u.cached_read, u.cache_write, u.reasoning] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.push(u8::from(u.estimated));
    out.extend_from_slice(&e.cost.0.to_le_bytes());
    out.extend_from_slice(&e.saved.0.to_le_bytes());
    out.extend_from_slice(&e.latency_ms.to_le_bytes());
    put_str(out, e.status.as_str());
    put_opt_str(out, e.error_class.as_deref());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer than 4 GiB cannot be an event's string (the record's own length
    // is a u32, and MAX_PAYLOAD refuses it when read).
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

/// Why a version-2 payload is not an event.
type Bad = &'static str;

/// Reads a version-2 payload front to back; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if self.0.len() < n {
            return Err("the payload ends inside a field");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool, Bad> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a flag that is neither 0 nor 1"),
        }
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        self.array().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, Bad> {
        self.array().map(i64::from_le_bytes)
    }
    fn str(&mut self) -> Result<&'a str, Bad> {
        let n = usize::try_from(self.u32()?).map_err(|_| "a string longer than memory")?;
        std::str::from_utf8(self.take(n)?).map_err(|_| "a string that is not UTF-8")
    }
    fn opt_str(&mut self) -> Result<Option<&'a str>, Bad> {
        if self.flag()? { self.str().map(Some) } else { Ok(None) }
    }
    fn name<T>(&mut self, parse: fn(&str) -> Option<T>, what: Bad) -> Result<T, Bad> {
        parse(self.str()?).ok_or(what)
    }
}

/// Version 2's payload as an event.
pub fn decode_event(b: &[u8]) -> Result<UsageEvent, Bad> {
    let mut r = Reader(b);
    let event_id = r.str()?.to_owned();
    let request_id = r.str()?.to_owned();
    let idempotency_key = r.opt_str()?.map(str::to_owned);
    let (secs, nanos) = (r.i64()?, r.u32()?);
    let ts = chrono::DateTime::from_timestamp(secs, nanos).ok_or("a timestamp out of range")?;
    let supplier_id = SupplierId(r.i64()?);
    let account_id = if r.flag()? { Some(AccountId(r.i64()?)) } else { None };
    let provider = r.name(ProviderKind::from_name, "an unknown provider")?;
    let model = r.str()?.to_owned();
    let request_type = r.name(RequestType::from_name, "an unknown request type")?;
    let route = r.name(Route::from_name, "an unknown route")?;
    let (input, output, cached_read, cache_write, reasoning) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let estimated = r.flag()?;
    let cost = Micros(r.i64()?);
    let saved = Micros(r.i64()?);
    let latency_ms = r.u32()?;
    let status = r.name(UsageStatus::from_name, "an unknown usage status")?;
    let error_class = r.opt_str()?.map(str::to_owned);
    if !r.0.is_empty() {
        return Err("bytes after the event");
    }
    Ok(UsageEvent {
        event_id,
        request_id,
        idempotency_key,
        ts,
        supplier_id,
        account_id,
        provider,
        model,
        request_type,
        route,
        usage: TokenUsage { input, output, cached_read, cache_write, reasoning, estimated },
        cost,
        saved,
        latency_ms,
        status,
        error_class,
    })
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

/// Decodes the record at the start of `b`, in a segment of format `version`.
pub fn decode_record(b: &[u8], version: u32) -> Decoded {
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
    let len = RECORD_HEAD + len;
    let event = if version == VERSION_JSON {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    } else {
        decode_event(payload).map_err(str::to_owned)
    };
    match event {
        Ok(event) => Decoded::Record { event, len },
        Err(error) => Decoded::Unreadable { len, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    pub(crate) fn event(id: &str) -> UsageEvent {
        UsageEvent {
            saved: Micros::ZERO,
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

    /// Every optional field set, every number away from zero and wide.
    fn full(id: &str) -> UsageEvent {
        UsageEvent {
            saved: Micros(-17),
            idempotency_key: Some("key-é-42".into()),
            ts: Utc.timestamp_opt(1_780_000_123, 456_789_123).unwrap(),
            supplier_id: SupplierId(i64::MAX),
            account_id: Some(AccountId(-9)),
            provider: ProviderKind::AzureOpenAi,
            model: "claude-3-5-sonnet-20241022".into(),
            request_type: RequestType::WeddingContent,
            route: Route::Failover,
            usage: TokenUsage { input: u64::MAX, output: 1 << 40, cached_read: 3, cache_write: 4, reasoning: 5, estimated: true },
            cost: Micros(i64::MIN),
            latency_ms: u32::MAX,
            status: UsageStatus::ClientGone,
            error_class: Some("rate_limited".into()),
            ..event(id)
        }
    }

    fn round_trip(e: &UsageEvent) {
        let mut buf = Vec::new();
        let n = encode_record(e, &mut buf);
        assert_eq!(n, buf.len());
        buf.extend_from_slice(&[0u8; 64]);
        assert_eq!(decode_record(&buf, VERSION), Decoded::Record { event: e.clone(), len: n });
        assert_eq!(decode_record(&buf[n..], VERSION), Decoded::End, "the zeros after it end the data");
    }

    #[test]
    fn a_record_round_trips_every_field_and_says_its_length() {
        round_trip(&event("a"));
        round_trip(&full("b"));
    }

    #[test]
    fn an_event_too_large_for_a_record_is_written_clipped_and_read_back() {
        // Five strings of 300 KiB each (a two-byte character at every odd
        // offset near the cut): 1.5 MiB, over MAX_PAYLOAD.
        let long = |c: char| std::iter::repeat_n(format!("{c}é"), 100_000).collect::<String>();
        let e = UsageEvent {
            event_id: long('e'),
            request_id: long('r'),
            idempotency_key: Some(long('k')),
            model: long('m'),
            error_class: Some(long('x')),
            ..full("big")
        };
        let mut buf = b"before".to_vec();
        let n = encode_record(&e, &mut buf);
        assert_eq!(n, buf.len() - 6, "the oversized payload was not left behind");
        assert!(n - RECORD_HEAD <= MAX_PAYLOAD);
        let next = encode_record(&event("next"), &mut buf);
        let Decoded::Record { event: got, len } = decode_record(&buf[6..], VERSION) else { panic!("not read back") };
        assert_eq!(len, n);
        assert_eq!(
            decode_record(&buf[6 + n..], VERSION),
            Decoded::Record { event: event("next"), len: next },
            "and the next record after it"
        );
        for (got, was) in [
            (&got.event_id, &e.event_id),
            (&got.request_id, &e.request_id),
            (got.idempotency_key.as_ref().unwrap(), e.idempotency_key.as_ref().unwrap()),
            (&got.model, &e.model),
            (got.error_class.as_ref().unwrap(), e.error_class.as_ref().unwrap()),
        ] {
            assert!(got.len() <= CLIPPED_STRING && got.len() >= CLIPPED_STRING - 1, "{}", got.len());
            assert!(was.starts_with(got.as_str()), "clipped at a character boundary, from the start");
        }
        let strings_cleared = |e: UsageEvent| UsageEvent {
            event_id: String::new(),
            request_id: String::new(),
            idempotency_key: None,
            model: String::new(),
            error_class: None,
            ..e
        };
        assert_eq!(strings_cleared(got), strings_cleared(e), "every other field as it was");
        // An event just under the limit is written as it is.
        let fits = UsageEvent { model: "m".repeat(MAX_PAYLOAD - 1024), ..event("fits") };
        let mut buf = Vec::new();
        encode_record(&fits, &mut buf);
        assert!(matches!(decode_record(&buf, VERSION), Decoded::Record { event, .. } if event == fits));
    }

    #[test]
    fn every_name_of_every_enum_round_trips() {
        for &provider in ProviderKind::ALL {
            round_trip(&UsageEvent { provider, ..event("p") });
        }
        for &request_type in RequestType::ALL {
            round_trip(&UsageEvent { request_type, ..event("t") });
        }
        for &route in Route::ALL {
            round_trip(&UsageEvent { route, ..event("r") });
        }
        for &status in UsageStatus::ALL {
            round_trip(&UsageEvent { status, ..event("s") });
        }
    }

    #[test]
    fn a_version_1_record_in_a_version_1_segment_is_still_read() {
        // As a build before version 2 wrote it: the event as JSON.
        let e = full("old");
        let mut buf = Vec::new();
        let n = encode_record_json(&e, &mut buf).unwrap();
        assert!(buf[RECORD_HEAD..n].starts_with(b"{"), "the payload is JSON");
        assert_eq!(decode_record(&buf, VERSION_JSON), Decoded::Record { event: e.clone(), len: n });
        // The same bytes are no version-2 event, and the reverse.
        assert!(matches!(decode_record(&buf, VERSION), Decoded::Unreadable { .. }));
        let mut v2 = Vec::new();
        encode_record(&e, &mut v2);
        assert!(matches!(decode_record(&v2, VERSION_JSON), Decoded::Unreadable { .. }));
    }

    #[test]
    fn every_cut_of_a_record_is_torn_or_the_end_never_a_record() {
        let mut buf = Vec::new();
        let n = encode_record(&full("cut"), &mut buf);
        for cut in 0..n {
            let d = decode_record(&buf[..cut], VERSION);
            assert!(matches!(d, Decoded::Torn | Decoded::End), "cut at {cut}: {d:?}");
            // Cut, then the preallocated zeros after it.
            let mut z = buf[..cut].to_vec();
            z.resize(n + 16, 0);
            let d = decode_record(&z, VERSION);
            assert!(matches!(d, Decoded::Torn | Decoded::End), "cut at {cut} then zeros: {d:?}");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_torn() {
        let mut buf = Vec::new();
        let n = encode_record(&full("flip"), &mut buf);
        for i in 0..n {
            for bit in [0x01u8, 0x80] {
                let mut b = buf.clone();
                b[i] ^= bit;
                let d = decode_record(&b, VERSION);
                assert!(!matches!(d, Decoded::Record { .. } | Decoded::Unreadable { .. }), "byte {i} bit {bit:#x}: {d:?}");
            }
        }
    }

    #[test]
    fn a_payload_cut_short_or_padded_or_scrambled_is_an_error_never_a_panic() {
        let mut p = Vec::new();
        encode_event(&full("x"), &mut p);
        assert_eq!(decode_event(&p), Ok(full("x")));
        for cut in 0..p.len() {
            assert!(decode_event(&p[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert_eq!(decode_event(&longer), Err("bytes after the event"));
        // Every byte replaced by every value: an event or an error, no panic,
        // and never a huge allocation (a string's length is checked first).
        for i in 0..p.len() {
            for v in [0u8, 1, 2, 0x7F, 0x80, 0xFF] {
                let mut b = p.clone();
                b[i] = v;
                let _ = decode_event(&b);
            }
        }
    }

    #[test]
    fn a_checksummed_record_that_is_not_an_event_is_unreadable_not_torn() {
        for (version, payload) in [(VERSION_JSON, &b"{\"not\":\"an event\"}"[..]), (VERSION, &b"\x05\x00\x00\x00abc"[..])] {
            let mut b = Vec::new();
            let n = frame(&mut b, |out| out.extend_from_slice(payload));
            assert!(matches!(decode_record(&b, version), Decoded::Unreadable { len, .. } if len == n), "version {version}");
        }
    }

    #[test]
    fn headers_are_checked_for_magic_version_and_damage() {
        let h = encode_header(77);
        assert_eq!(decode_header(&h), Ok(Header { segment: 77, version: VERSION }));
        assert_eq!(decode_header(&encode_header_version(5, VERSION_JSON)), Ok(Header { segment: 5, version: VERSION_JSON }));
        assert_eq!(decode_header(&[0u8; 32]), Err(HeaderError::NotASegment));
        assert_eq!(decode_header(&h[..20]), Err(HeaderError::NotASegment));
        let mut d = h;
        d[17] ^= 1;
        assert_eq!(decode_header(&d), Err(HeaderError::Damaged));
        assert_eq!(decode_header(&encode_header_version(77, VERSION + 1)), Err(HeaderError::NewerVersion(VERSION + 1)));
        assert_eq!(decode_header(&encode_header_version(77, 0)), Err(HeaderError::NotASegment));
    }

    #[test]
    fn an_oversized_length_is_torn_not_an_allocation() {
        let mut b = vec![0xFFu8; 16];
        b[..4].copy_from_slice(&(u32::MAX).to_le_bytes());
        assert_eq!(decode_record(&b, VERSION), Decoded::Torn);
    }
}

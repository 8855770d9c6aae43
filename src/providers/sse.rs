//! An incremental Server-Sent Events parser: feed it bytes as they arrive,
//! take out complete events. Tolerates `\r\n`, comments and multi-line data;
//! refuses to buffer more than a cap so a hostile stream cannot exhaust memory.

use bytes::{Buf, BytesMut};

/// Largest single event we accept.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseTooLarge;

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SseTooLarge> {
        if self.buf.len() + bytes.len() > MAX_EVENT_BYTES {
            return Err(SseTooLarge);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes received but not yet part of a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if one has arrived.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let (end, sep) = find_blank_line(&self.buf)?;
            let block = self.buf.split_to(end);
            self.buf.advance(sep);
            if let Some(ev) = parse_block(&block) {
                return Some(ev);
            }
        }
    }
}

/// Position of the first blank line (end of an event) and the separator length.
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

fn parse_block(block: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(block);
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    data.map(|data| SseEvent { event, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_events() {
        let mut p = SseParser::new();
        p.push(b"event: ping\ndata: {\"a\"").unwrap();
        assert_eq!(p.next_event(), None);
        p.push(b":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n").unwrap();
        assert_eq!(p.next_event(), Some(SseEvent { event: Some("ping".into()), data: "{\"a\":1}".into() }));
        assert_eq!(p.next_event().unwrap().data, "x\ny");
        assert_eq!(p.next_event().unwrap().data, "[DONE]");
        assert_eq!(p.next_event(), None);
    }

    #[test]
    fn refuses_huge_events() {
        let mut p = SseParser::new();
        assert!(p.push(&vec![b'a'; MAX_EVENT_BYTES + 1]).is_err());
    }
}

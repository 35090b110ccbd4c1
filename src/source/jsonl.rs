//! JSON Lines files, plain or gzip (detected by magic bytes, not by name).

use super::{Item, Reject};
use crate::decode::{DecodeError, Decoder, MAX_RECORD_BYTES};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Reads one JSONL file line by line, reusing one buffer.
pub struct JsonlSource {
    reader: Box<dyn BufRead + Send>,
    name: String,
    line: u64,
    buf: Vec<u8>,
    decoder: Decoder,
    /// Bytes read so far (for progress).
    pub bytes: u64,
}

impl JsonlSource {
    pub fn open(path: &Path, decoder: Decoder) -> std::io::Result<Self> {
        let mut f = File::open(path)?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic)?;
        let f = File::open(path)?;
        let reader: Box<dyn BufRead + Send> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f)),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, f))
        };
        Ok(Self::from_reader(
            reader,
            path.display().to_string(),
            decoder,
        ))
    }

    pub fn from_reader(reader: Box<dyn BufRead + Send>, name: String, decoder: Decoder) -> Self {
        Self {
            reader,
            name,
            line: 0,
            buf: Vec::with_capacity(1024),
            decoder,
            bytes: 0,
        }
    }
}

impl Iterator for JsonlSource {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            // Fast path: a whole line already in the reader's buffer is decoded in place.
            match self.reader.fill_buf() {
                // `read_until` below retries these, as before.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.line += 1;
                    let err = DecodeError::MalformedJson(format!("read error: {e}"));
                    return Some(reject(&self.name, self.line, &err, b""));
                }
                Ok(avail) => {
                    let limit = MAX_RECORD_BYTES + 1;
                    let head = &avail[..avail.len().min(limit)];
                    if let Some(pos) = memchr::memchr(b'\n', head) {
                        let n = pos + 1;
                        self.bytes += n as u64;
                        self.line += 1;
                        let item = decode_line(&self.decoder, &self.name, self.line, &avail[..n]);
                        self.reader.consume(n);
                        match item {
                            Some(item) => return Some(item),
                            None => continue,
                        }
                    }
                }
            }
            self.buf.clear();
            // Cap how much one line may hold in memory: read at most limit+1 bytes of it.
            let limit = (MAX_RECORD_BYTES + 1) as u64;
            let n = match (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
            {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    self.line += 1;
                    let err = DecodeError::MalformedJson(format!("read error: {e}"));
                    return Some(reject(&self.name, self.line, &err, b""));
                }
            };
            self.bytes += n as u64;
            self.line += 1;
            let mut oversize = false;
            if self.buf.last() != Some(&b'\n') && n as u64 == limit {
                // Over-long line: skip the rest of it.
                oversize = true;
                let mut skip = Vec::new();
                let _ = self.reader.read_until(b'\n', &mut skip);
                self.bytes += skip.len() as u64;
            }
            if oversize {
                let err = DecodeError::TooLarge(n);
                return Some(reject(&self.name, self.line, &err, &self.buf));
            }
            if let Some(item) = decode_line(&self.decoder, &self.name, self.line, &self.buf) {
                return Some(item);
            }
        }
    }
}

/// Decode one line (newline included, at most the record limit); `None` for a blank line.
fn decode_line(decoder: &Decoder, name: &str, line: u64, buf: &[u8]) -> Option<Item> {
    let mut rec = buf;
    while let [rest @ .., b'\n' | b'\r'] = rec {
        rec = rest;
    }
    if rec.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match decoder.decode_json(rec) {
        Ok(ev) => Item::Event(ev),
        Err(err) => reject(name, line, &err, rec),
    })
}

fn reject(name: &str, line: u64, err: &DecodeError, rec: &[u8]) -> Item {
    let mut rec = rec;
    while let [rest @ .., b'\n' | b'\r'] = rec {
        rec = rest;
    }
    let shown = &rec[..rec.len().min(4096)];
    Item::Reject(Reject::new(format!("{name}:{line}"), err, shown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn items(data: &[u8], capacity: usize) -> Vec<String> {
        let reader = Box::new(BufReader::with_capacity(
            capacity,
            Cursor::new(data.to_vec()),
        ));
        let mut src = JsonlSource::from_reader(reader, "f".into(), Decoder::default());
        let mut out: Vec<String> = src.by_ref().map(|i| format!("{i:?}")).collect();
        out.push(format!("bytes {}", src.bytes));
        out
    }

    /// Lines decoded in place in the reader's buffer and lines copied out (those that
    /// straddle a refill, or are too long) give the same items, line numbers and byte count.
    #[test]
    fn in_place_and_copied_lines_read_the_same() {
        let ok = r#"{"id":"e1","ts":1,"type":"sign_on","terminal":"T1","pan":"6225880123456789"}"#;
        let mut data = Vec::new();
        for line in [
            ok,
            "",
            "   ",
            "{truncated",
            r#"{"id":"e2","ts":"2026-10-01T09:00:00Z","type":"auth","terminal":"T","merchant":"M"}"#,
            "\r",
            "not json 6225880123456789",
        ] {
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        data.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        data.push(b'\n');
        data.extend(std::iter::repeat_n(b' ', MAX_RECORD_BYTES));
        data.push(b'\n');
        data.extend_from_slice(ok.as_bytes()); // no final newline
        let big = items(&data, 1 << 20);
        assert_eq!(big.len(), 7, "{big:#?}");
        assert!(big[3].contains("f:7") && !big[3].contains("0123456789"));
        assert!(big[4].contains("f:8") && big[4].contains("too_large"));
        assert!(big[5].contains("e1"));
        for capacity in [8, 100, 4096, MAX_RECORD_BYTES + 1] {
            assert_eq!(items(&data, capacity), big, "capacity {capacity}");
        }
    }
}

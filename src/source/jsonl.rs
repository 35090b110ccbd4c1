//! JSON Lines: a file, standard input or a pipe, plain or gzip (see [`super::stream`]).
//!
//! Every line read is one item: an event, a reject, or a blank line. A UTF-8 byte order mark
//! before the first record is skipped. A read error (a truncated gzip stream, trailing bytes
//! that are not gzip, an I/O error) ends the file with one `read_error` reject carrying what
//! was read of the line; it is never retried (a reader in error keeps failing).

use super::{Item, Reject};
use crate::decode::{DecodeError, Decoder, MAX_RECORD_BYTES};
use std::io::{BufRead, ErrorKind, Read};
use std::path::Path;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads one JSONL stream line by line, reusing one buffer.
pub struct JsonlSource {
    reader: Box<dyn BufRead + Send>,
    name: String,
    line: u64,
    buf: Vec<u8>,
    decoder: Decoder,
    /// A read error ended the stream.
    done: bool,
    /// Bytes read so far (for progress).
    pub bytes: u64,
}

impl JsonlSource {
    pub fn open(path: &Path, decoder: Decoder) -> std::io::Result<Self> {
        let reader = super::open_stream(path)?;
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
            done: false,
            bytes: 0,
        }
    }

    /// The one reject a read error gives; the stream ends with it.
    fn failed(&mut self, e: std::io::Error) -> Item {
        self.done = true;
        self.line += 1;
        let err = DecodeError::ReadError(format!("{e}; the rest of the file is not read"));
        reject(&self.name, self.line, &err, &self.buf)
    }

    /// Fast path: a whole line already in the reader's buffer, decoded in place.
    /// `Ok(None)`: no whole line there (take the slow path).
    fn next_in_place(&mut self) -> Result<Option<Item>, std::io::Error> {
        let avail = match self.reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        };
        let head = &avail[..avail.len().min(MAX_RECORD_BYTES + 1)];
        let Some(pos) = memchr::memchr(b'\n', head) else {
            return Ok(None);
        };
        let n = pos + 1;
        self.bytes += n as u64;
        self.line += 1;
        let item = decode_line(&self.decoder, &self.name, self.line, &avail[..n]);
        self.reader.consume(n);
        Ok(Some(item))
    }

    /// Slow path: the line is copied out (it straddles a refill, or is too long).
    fn next_copied(&mut self) -> Option<Item> {
        self.buf.clear();
        // Cap how much one line may hold in memory: read at most limit+1 bytes of it.
        let limit = (MAX_RECORD_BYTES + 1) as u64;
        let n = match (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) => return Some(self.failed(e)),
        };
        self.bytes += n as u64;
        self.line += 1;
        if self.buf.last() != Some(&b'\n') && n as u64 == limit {
            // Over-long line: skip the rest of it.
            let mut skip = Vec::new();
            if let Err(e) = self.reader.read_until(b'\n', &mut skip) {
                return Some(self.failed(e));
            }
            self.bytes += skip.len() as u64;
            let err = DecodeError::TooLarge(n);
            return Some(reject(&self.name, self.line, &err, &self.buf));
        }
        Some(decode_line(&self.decoder, &self.name, self.line, &self.buf))
    }
}

impl Iterator for JsonlSource {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        match self.next_in_place() {
            Ok(Some(item)) => Some(item),
            Ok(None) => self.next_copied(),
            Err(e) => {
                // fill_buf fails only with nothing buffered: no part of a line was read.
                self.buf.clear();
                Some(self.failed(e))
            }
        }
    }
}

/// Decode one line (newline included, at most the record limit).
fn decode_line(decoder: &Decoder, name: &str, line: u64, buf: &[u8]) -> Item {
    let mut rec = buf;
    if line == 1 {
        rec = rec.strip_prefix(BOM).unwrap_or(rec);
    }
    while let [rest @ .., b'\n' | b'\r'] = rec {
        rec = rest;
    }
    if rec.iter().all(u8::is_ascii_whitespace) {
        return Item::Blank;
    }
    match decoder.decode_input(rec) {
        Ok(crate::decode::Input::Event(ev)) => Item::Event(ev),
        Ok(crate::decode::Input::Control(c)) => Item::Control(c),
        Err(err) => reject(name, line, &err, rec),
    }
}

fn reject(name: &str, line: u64, err: &DecodeError, rec: &[u8]) -> Item {
    let mut rec = rec;
    while let [rest @ .., b'\n' | b'\r'] = rec {
        rec = rest;
    }
    Item::Reject(Reject::new(format!("{name}:{line}"), err, rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

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
        let ok = r#"{"id":"e1","ts":1790000000000,"type":"sign_on","terminal":"T1","pan":"6225880123456789"}"#;
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
        assert_eq!(big.len(), 11, "{big:#?}");
        assert_eq!(big.iter().filter(|i| *i == "Blank").count(), 4, "{big:#?}");
        assert!(big[6].contains("f:7") && !big[6].contains("0123456789"));
        assert!(big[7].contains("f:8") && big[7].contains("too_large"));
        assert!(big[8] == "Blank" && big[9].contains("e1"));
        for capacity in [8, 100, 4096, MAX_RECORD_BYTES + 1] {
            assert_eq!(items(&data, capacity), big, "capacity {capacity}");
        }
    }
}

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
                    return Some(Item::Reject(Reject::new(
                        format!("{}:{}", self.name, self.line),
                        &err,
                        b"",
                    )));
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
            let mut rec = self.buf.as_slice();
            while let [rest @ .., b'\n' | b'\r'] = rec {
                rec = rest;
            }
            if rec.iter().all(u8::is_ascii_whitespace) && !oversize {
                continue;
            }
            let res = if oversize {
                Err(DecodeError::TooLarge(n))
            } else {
                self.decoder.decode_json(rec)
            };
            return Some(match res {
                Ok(ev) => Item::Event(ev),
                Err(err) => {
                    let shown = &rec[..rec.len().min(4096)];
                    Item::Reject(Reject::new(
                        format!("{}:{}", self.name, self.line),
                        &err,
                        shown,
                    ))
                }
            });
        }
    }
}

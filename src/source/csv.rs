//! CSV: one row per line, columns named by the contract's field names in a header line.
//!
//! Rows are parsed one line at a time (csv-core, the parser under the `csv` crate), so a bad
//! row — a field too many or too few, invalid UTF-8, an unclosed quote — is a reject with its
//! row number and the rows after it are read as usual (a whole-file parser gives up on the
//! first). A field cannot span lines: switch exports do not need it, and it is what lets one
//! bad quote cost one row. The header is matched without regard to case or surrounding
//! spaces; the delimiter is the one of `,` `;` tab `|` the header uses most. A header without
//! the required columns is said once, as one reject standing for every row of the file.

use super::{Item, Reject};
use crate::decode::raw::{RawEvent, FIELDS};
use crate::decode::{DecodeError, Decoder, MAX_RECORD_BYTES};
use std::io::{BufRead, Read};
use std::path::Path;

/// Columns a row cannot be decoded without.
const REQUIRED: [&str; 4] = ["id", "ts", "type", "terminal"];
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Reads one CSV stream line by line.
pub struct CsvSource {
    reader: Box<dyn BufRead + Send>,
    name: String,
    decoder: Decoder,
    line: u64,
    buf: Vec<u8>,
    /// The parsed header: the delimiter and each column's contract field (None: ignored).
    header: Option<(u8, Vec<Option<&'static str>>)>,
    done: bool,
}

impl CsvSource {
    pub fn open(path: &Path, decoder: Decoder) -> std::io::Result<Self> {
        Ok(Self::from_reader(
            super::open_stream(path)?,
            path.display().to_string(),
            decoder,
        ))
    }

    pub fn from_reader(reader: Box<dyn BufRead + Send>, name: String, decoder: Decoder) -> Self {
        Self {
            reader,
            name,
            decoder,
            line: 0,
            buf: Vec::new(),
            header: None,
            done: false,
        }
    }

    /// The next line into `buf` (without its line ending); false at the end. An over-long
    /// line is cut (and refused by the row check); a read error ends the file with one reject.
    // The error is the one reject that ends the file: rare, moved once.
    #[allow(clippy::result_large_err)]
    fn read_line(&mut self) -> Result<bool, Item> {
        self.buf.clear();
        let limit = (MAX_RECORD_BYTES + 1) as u64;
        match (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(0) => return Ok(false),
            Ok(n) if n as u64 == limit && self.buf.last() != Some(&b'\n') => {
                let mut skip = Vec::new();
                let _ = self.reader.read_until(b'\n', &mut skip);
            }
            Ok(_) => {}
            Err(e) => {
                self.done = true;
                self.line += 1;
                let err = DecodeError::ReadError(format!("{e}; the rest of the file is not read"));
                return Err(Item::Reject(self.reject_line(&err)));
            }
        }
        self.line += 1;
        while let [.., b'\n' | b'\r'] = self.buf[..] {
            self.buf.pop();
        }
        if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.buf.drain(..3);
        }
        Ok(true)
    }

    fn reject_line(&self, err: &DecodeError) -> Reject {
        let row = self.line.saturating_sub(1);
        Reject::new(format!("{}:row {row}", self.name), err, &self.buf)
    }

    /// Read the header line; `Err` with the one reject that stands for the whole file.
    #[allow(clippy::result_large_err)] // as read_line
    fn read_header(&mut self) -> Result<(), Item> {
        let delim = DELIMITERS
            .into_iter()
            .max_by_key(|d| (self.buf.iter().filter(|b| *b == d).count(), d == &b','))
            .expect("four delimiters");
        let names = match split(&self.buf, delim) {
            Ok(f) => f,
            Err(why) => return Err(self.bad_header(why)),
        };
        let cols: Vec<Option<&'static str>> = names
            .iter()
            .map(|n| {
                let n = String::from_utf8_lossy(n).trim().to_ascii_lowercase();
                FIELDS.iter().copied().find(|f| *f == n)
            })
            .collect();
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|r| !cols.contains(&Some(r)))
            .collect();
        if !missing.is_empty() {
            let shown: Vec<String> = names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            return Err(self.bad_header(format!(
                "no {} column (columns read with delimiter {:?}: {})",
                missing.join(", "),
                delim as char,
                shown.join(", ")
            )));
        }
        self.header = Some((delim, cols));
        Ok(())
    }

    /// The file's one reject for an unusable header; its rows are counted, not read.
    fn bad_header(&mut self, why: String) -> Item {
        let header = std::mem::take(&mut self.buf);
        let mut rows = 0;
        while let Ok(true) = self.read_line() {
            rows += u64::from(!self.buf.iter().all(u8::is_ascii_whitespace));
        }
        self.done = true;
        let err = DecodeError::BadHeader(format!("{why}; {rows} data rows not read"));
        let mut r = Reject::new(format!("{}:1", self.name), &err, &header);
        r.records = rows;
        Item::Reject(r)
    }

    fn row(&self) -> Item {
        let (delim, cols) = self.header.as_ref().expect("header read");
        let fields = match split(&self.buf, *delim) {
            Ok(f) => f,
            Err(why) => return Item::Reject(self.reject_line(&DecodeError::MalformedRow(why))),
        };
        if fields.len() != cols.len() {
            let why = format!("{} fields, the header has {}", fields.len(), cols.len());
            return Item::Reject(self.reject_line(&DecodeError::MalformedRow(why)));
        }
        let mut pairs = Vec::with_capacity(cols.len());
        for (col, f) in cols.iter().zip(&fields) {
            let Some(name) = col else { continue };
            match std::str::from_utf8(f) {
                Ok(v) => pairs.push((*name, Some(v))),
                Err(e) => {
                    let err = DecodeError::InvalidUtf8(e.valid_up_to());
                    return Item::Reject(self.reject_line(&err));
                }
            }
        }
        match self.decoder.validate(RawEvent::from_pairs(pairs)) {
            Ok(ev) => Item::Event(ev),
            Err(err) => Item::Reject(self.reject_line(&err)),
        }
    }
}

impl Iterator for CsvSource {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if self.done {
                return None;
            }
            match self.read_line() {
                Ok(false) => return None,
                Err(item) => return Some(item),
                Ok(true) => {}
            }
            // The first line is the header, even blank (then it is an unusable one): a blank
            // line taken as "no header yet" would make the first data row the header.
            if self.header.is_some() && self.buf.iter().all(u8::is_ascii_whitespace) {
                return Some(Item::Blank);
            }
            if self.buf.len() > MAX_RECORD_BYTES {
                let err = DecodeError::TooLarge(self.buf.len());
                return Some(Item::Reject(self.reject_line(&err)));
            }
            if self.header.is_some() {
                return Some(self.row());
            }
            // The header is not a record: go on to the first row.
            if let Err(item) = self.read_header() {
                return Some(item);
            }
        }
    }
}

/// The fields of one line, quotes removed. Refused: an unbalanced quote (a quoted field left
/// open at the end of the line, or a stray quote).
fn split(line: &[u8], delim: u8) -> Result<Vec<Vec<u8>>, String> {
    if line.iter().filter(|b| **b == b'"').count() % 2 == 1 {
        return Err("unclosed quote".into());
    }
    let mut rdr = csv_core::ReaderBuilder::new().delimiter(delim).build();
    let mut fields = Vec::new();
    let mut out = vec![0u8; line.len() + 1];
    let mut input = line;
    let mut field = Vec::new();
    loop {
        let (res, nin, nout) = rdr.read_field(input, &mut out);
        input = &input[nin..];
        field.extend_from_slice(&out[..nout]);
        match res {
            csv_core::ReadFieldResult::InputEmpty if input.is_empty() && !line.is_empty() => {
                // Signal the end of the line: the last field follows.
                let (res, _, nout) = rdr.read_field(&[], &mut out);
                field.extend_from_slice(&out[..nout]);
                if matches!(res, csv_core::ReadFieldResult::Field { .. }) {
                    fields.push(std::mem::take(&mut field));
                }
                return Ok(fields);
            }
            csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
            csv_core::ReadFieldResult::Field { record_end } => {
                fields.push(std::mem::take(&mut field));
                if record_end {
                    return Ok(fields);
                }
            }
            csv_core::ReadFieldResult::End => return Ok(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn items(data: &[u8]) -> Vec<Item> {
        let r = Box::new(std::io::BufReader::new(Cursor::new(data.to_vec())));
        CsvSource::from_reader(r, "f.csv".into(), Decoder::default()).collect()
    }

    fn codes(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Event(e) => format!("event {}", e.id),
                Item::Reject(r) => format!("{} {}", r.reason_code, r.source),
                Item::Blank => "blank".into(),
                Item::Control(c) => format!("control {}", c.id),
            })
            .collect()
    }

    #[test]
    fn a_bad_row_is_one_reject_with_its_row_number() {
        let mut data = b"\xEF\xBB\xBFID ; TS ;Type;terminal;merchant\n".to_vec();
        data.extend_from_slice(b"a1;2026-10-01T10:00:00Z;auth;T1;M1\n");
        data.extend_from_slice(b"a2;2026-10-01T10:00:00Z;auth;T1;M1;extra\n");
        data.extend_from_slice(b"a3;2026-10-01T10:00:00Z;auth;T\xff;M1\n");
        data.extend_from_slice(b"\"a4;2026-10-01T10:00:00Z;auth;T1;M1\n");
        data.extend_from_slice(b"\n");
        data.extend_from_slice(b"\"a;5\";2026-10-01T10:00:00Z;auth;T1;M1\r\n");
        data.extend_from_slice(b"a6;2026-10-01T10:00:00Z;auth;T1\n");
        let got = codes(&items(&data));
        assert_eq!(
            got,
            [
                "event a1",
                "malformed_row f.csv:row 2",
                "invalid_utf8 f.csv:row 3",
                "malformed_row f.csv:row 4",
                "blank",
                "event a;5",
                "malformed_row f.csv:row 7",
            ]
        );
    }

    #[test]
    fn an_unusable_header_is_said_once_for_the_whole_file() {
        let data = b"ident,when,kind,tid,mid\n1,2,3,4,5\n6,7,8,9,10\n\n";
        let got = items(data);
        assert_eq!(got.len(), 1);
        let Item::Reject(r) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(r.reason_code, "bad_header");
        assert_eq!(r.records, 2, "it stands for the two rows");
        assert!(
            r.reason.contains("no id, ts, type, terminal column"),
            "{}",
            r.reason
        );
        assert!(r.reason.contains("2 data rows not read"), "{}", r.reason);
    }

    #[test]
    fn quoted_fields_and_pans_in_rows_are_handled() {
        let data = b"id,ts,type,terminal,merchant,pan\n\"x,1\",1790000000000,auth,T1,\"M \"\"one\"\"\",6225 8801 2345 6780\n";
        let got = items(data);
        let Item::Event(e) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(e.id, "x,1");
        assert_eq!(e.merchant.as_deref(), Some("M \"one\""));
        assert_eq!(e.pan_masked.as_deref(), Some("622588******6780"));
    }
}

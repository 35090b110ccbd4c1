//! A hand-written reader for the common shape of a JSON record: one flat object whose values
//! are strings without escapes, non-negative integers, or `null`.
//!
//! It answers only when it is sure to agree with serde_json and the derived [`RawEvent`]
//! deserialiser; for anything else (escapes, nested values, floats, negative or very long
//! numbers, duplicate contract fields, invalid UTF-8, any syntax error) it answers `None` and
//! the caller takes the serde path, which keeps every reject and its reason as they were.

use super::raw::{RawEvent, StrOrInt};
use std::borrow::Cow;

/// Parse `bytes` if it has the simple shape, else `None` (see the module comment).
/// `on_pan` sees the `pan` value as soon as it is read (to warm the token cache early).
pub fn scan(bytes: &[u8], mut on_pan: impl FnMut(&str)) -> Option<RawEvent<'_>> {
    // One UTF-8 check for the whole record; strings are then slices of it.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner {
        t: text,
        b: bytes,
        i: 0,
    };
    let mut raw = RawEvent::default();
    let mut seen = 0u32;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.eat(b'"')?;
            let key = s.key()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let Some(f) = field(key) else {
                if key == b"control" {
                    return None; // a control record: decoded elsewhere
                }
                s.skip_value()?;
                if s.next_member()? {
                    continue;
                }
                break;
            };
            // serde rejects a contract field given twice, even as null.
            if seen & (1 << f) != 0 {
                return None;
            }
            seen |= 1 << f;
            match f {
                1 => raw.ts = s.str_or_int()?,
                7 => raw.mcc = s.str_or_int()?,
                8 => raw.amount = s.str_or_int()?,
                _ => *str_field(&mut raw, f) = s.opt_str()?,
            }
            if let (3, Some(p)) = (f, &raw.pan) {
                on_pan(p);
            }
            if !s.next_member()? {
                break;
            }
        }
    }
    s.ws();
    (s.i == bytes.len()).then_some(raw)
}

/// The index of a contract field in [`super::raw::FIELDS`].
#[inline]
fn field(key: &[u8]) -> Option<u32> {
    Some(match key {
        b"id" => 0,
        b"ts" => 1,
        b"type" => 2,
        b"pan" => 3,
        b"card" => 4,
        b"terminal" => 5,
        b"merchant" => 6,
        b"mcc" => 7,
        b"amount" => 8,
        b"currency" => 9,
        b"entry_mode" => 10,
        b"pin" => 11,
        b"response_code" => 12,
        b"auth_ref" => 13,
        b"original_id" => 14,
        b"batch" => 15,
        b"qr_ref" => 16,
        b"label" => 17,
        _ => return None,
    })
}

#[inline]
fn str_field<'r, 'a>(raw: &'r mut RawEvent<'a>, f: u32) -> &'r mut Option<Cow<'a, str>> {
    match f {
        0 => &mut raw.id,
        2 => &mut raw.kind,
        3 => &mut raw.pan,
        4 => &mut raw.card,
        5 => &mut raw.terminal,
        6 => &mut raw.merchant,
        9 => &mut raw.currency,
        10 => &mut raw.entry_mode,
        11 => &mut raw.pin,
        12 => &mut raw.response_code,
        13 => &mut raw.auth_ref,
        14 => &mut raw.original_id,
        15 => &mut raw.batch,
        16 => &mut raw.qr_ref,
        _ => &mut raw.label,
    }
}

/// A cursor over the record. Every method returns `None` for "not the simple shape".
struct Scanner<'a> {
    t: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// JSON whitespace, as serde_json skips it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// After a member: `,` and the next key's quote, or `}`. `true` when another follows.
    #[inline]
    fn next_member(&mut self) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.ws();
                Some(true)
            }
            b'}' => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// The rest of a string after its opening quote: its text, if it has no escape and no
    /// control character.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        // The cursor is kept in a register (`None` abandons the record, so it may be left).
        let (b, start) = (self.b, self.i);
        let mut i = start;
        loop {
            match *b.get(i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => i += 1,
            }
        }
        self.i = i + 1;
        // Both ends are next to an ASCII quote, so on character boundaries.
        self.t.get(start..i)
    }

    fn key(&mut self) -> Option<&'a [u8]> {
        self.string().map(str::as_bytes)
    }

    fn null(&mut self) -> Option<()> {
        if self.b.get(self.i..self.i + 4)? == b"null" {
            self.i += 4;
            Some(())
        } else {
            None
        }
    }

    /// A non-negative integer of at most 18 digits, no leading zero, not followed by a
    /// fraction or an exponent (those are floats to serde_json).
    fn int(&mut self) -> Option<i64> {
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            // Checked before the digit is added: 18 digits always fit in an i64, 19 may not.
            if self.i - start == 18 {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            return None;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    #[inline]
    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                Some(Some(Cow::Borrowed(self.string()?)))
            }
            b'n' => self.null().map(|_| None),
            _ => None,
        }
    }

    #[inline]
    fn str_or_int(&mut self) -> Option<Option<StrOrInt<'a>>> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                Some(Some(StrOrInt::Str(Cow::Borrowed(self.string()?))))
            }
            b'n' => self.null().map(|_| None),
            b'0'..=b'9' => Some(Some(StrOrInt::Int(self.int()?))),
            _ => None,
        }
    }

    /// The value of a field outside the contract, ignored if it is a simple one.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|_| ())
            }
            b'n' => self.null(),
            b'0'..=b'9' => self.int().map(|_| ()),
            b't' | b'f' => {
                for lit in [&b"true"[..], b"false"] {
                    if self.b.get(self.i..self.i + lit.len()) == Some(lit) {
                        self.i += lit.len();
                        return Some(());
                    }
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;

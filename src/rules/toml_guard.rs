//! A bound on bracket nesting in a rule file, checked before the TOML parser sees it.
//!
//! The toml crate's parser (toml_parser 1.1) recurses once per open `[` or `{`. Its recursion
//! guard (80 levels) counts opens and closes, and on some malformed input (found by the rule
//! fuzz: thousands of `{}` inside a broken inline table, then thousands of `[`) the closes it
//! counts outnumber the opens, the count goes negative, and the parser then recurses without
//! limit: a 46 KB file overflowed the 8 MiB main stack of `rules check`, and would have killed
//! a live reload. So the file is scanned here first, linearly and without recursion, with the
//! same tokenisation as that parser's lexer (comments, the four string forms with their
//! escapes and extra closing quotes, bare atoms that may contain quotes), and brackets nested
//! deeper than [`MAX_NESTING`] refuse the file. A close pops only a matching open, so this
//! count is never below the parser's depth. A rule file needs 3 levels
//! (`events = [ { ... } ]`), 4 for the deepest table header.

/// Most brackets (`[`, `{`) open at once in a rule file (the toml crate's own limit is 80).
pub const MAX_NESTING: usize = 64;

/// The byte offset of the first bracket past [`MAX_NESTING`], if any.
pub fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut open: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i = match c {
            b'[' | b'{' => {
                open.push(c);
                if open.len() > MAX_NESTING {
                    return Some(i);
                }
                i + 1
            }
            b']' | b'}' => {
                let opener = if c == b']' { b'[' } else { b'{' };
                if open.last() == Some(&opener) {
                    open.pop();
                }
                i + 1
            }
            b'#' => line_end(b, i),
            b'\'' if b[i..].starts_with(b"'''") => ml_end(b, i + 3, b'\'', false),
            b'"' if b[i..].starts_with(b"\"\"\"") => ml_end(b, i + 3, b'"', true),
            b'\'' | b'"' => string_end(b, i + 1, c),
            b'.' | b'=' | b',' | b' ' | b'\t' | b'\r' | b'\n' => i + 1,
            _ => atom_end(b, i),
        };
    }
    None
}

/// A comment runs to the end of its line (the newline is not part of it).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&x| x == b'\r' || x == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// A one-line string (from just after its quote): ends after the closing quote, or before a
/// newline; in a basic string (`"`), `\` escapes a following `\` or `"`.
fn string_end(b: &[u8], mut i: usize, quote: u8) -> usize {
    while i < b.len() {
        match b[i] {
            x if x == quote => return i + 1,
            b'\n' => return i,
            b'\\' if quote == b'"' => {
                i += 1;
                if i < b.len() && (b[i] == b'\\' || b[i] == b'"') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// A multi-line string (from just after its opening delimiter): ends after the closing
/// triple quote and up to two more quotes; `basic` strings have `\` escapes.
fn ml_end(b: &[u8], mut i: usize, quote: u8, basic: bool) -> usize {
    let delim = [quote; 3];
    while i < b.len() {
        if b[i..].starts_with(&delim) {
            i += 3;
            for _ in 0..2 {
                if b.get(i) == Some(&quote) {
                    i += 1;
                }
            }
            return i;
        }
        if basic && b[i] == b'\\' {
            i += 1;
            if i < b.len() && (b[i] == b'\\' || b[i] == b'"') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// A bare atom (key, number, date, boolean) runs until a structural byte; quotes inside it
/// do not start a string.
fn atom_end(b: &[u8], i: usize) -> usize {
    const STOP: &[u8] = b".=,[]{} \t#\r\n";
    b[i..]
        .iter()
        .position(|x| STOP.contains(x))
        .map_or(b.len(), |p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_and_strings_comments_atoms_hide_nothing_they_should_not() {
        let deep = |n: usize| format!("a = {}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(&deep(64)), None);
        assert_eq!(too_deep(&deep(65)), Some(4 + 64));
        // Closes of the other kind, or inside strings, do not lower the count.
        let mixed = format!("a = {}", "[}".repeat(100));
        assert!(too_deep(&mixed).is_some());
        let quoted = format!("a = {}", "[ \"]\", ".repeat(100));
        assert!(too_deep(&quoted).is_some());
        // Brackets inside strings and comments are text...
        let text = format!(
            "a = \"{0}\"\nb = '{0}'\nc = \"\"\"{0}\n{0}\"\"\"\nd = '''{0}'''\n# {0}\n",
            "[".repeat(100)
        );
        assert_eq!(too_deep(&text), None);
        // ...but a quote inside a bare atom starts no string, and an unclosed string ends
        // at the newline, as in the toml lexer.
        let atom = format!("a\"b = 1\n{}", "[".repeat(65));
        assert!(too_deep(&atom).is_some());
        let unclosed = format!("a = \"open\n{}", "[".repeat(65));
        assert!(too_deep(&unclosed).is_some());
        let escaped = format!("a = \"x\\\"{}\"\n", "[".repeat(65));
        assert_eq!(too_deep(&escaped), None);
        for f in [
            include_str!("../../rules/pin.toml"),
            include_str!("../../rules/nopin.toml"),
            include_str!("../../rules/limits.toml"),
        ] {
            assert_eq!(too_deep(f), None);
        }
    }
}

//! Opening an input as a byte stream: a file, standard input (`-`), a pipe or a device, plain
//! or gzip. The format is detected from the first two bytes read *through the same handle*
//! (reopening a path to peek loses those bytes on a pipe or `/dev/stdin`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;

/// The path that means standard input.
pub const STDIN: &str = "-";

/// Read buffer of an input (and of the gzip layer under it).
const BUF: usize = 1 << 20;

/// `path` (or standard input for `-`) as a buffered stream, decompressed when it starts with
/// the gzip magic bytes. Concatenated gzip members are read as one stream.
pub fn open_stream(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let mut inner: Box<dyn Read + Send> = if path == Path::new(STDIN) {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    // A pipe may hand over one byte at a time: read until two or the end.
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match inner.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = Cursor::new(head[..n].to_vec()).chain(inner);
    Ok(if n == 2 && head == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            BUF,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUF, whole)),
        ))
    } else {
        Box::new(BufReader::with_capacity(BUF, whole))
    })
}

/// Whether `a` and `b` name the same existing file (same device and inode: hard links,
/// symlinks and different spellings of one path included).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn plain_and_gzip_read_whole_through_one_handle() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.jsonl");
        std::fs::write(&plain, b"{\"a\":1}\n").unwrap();
        let gz = dir.path().join("b");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"{\"b\":2}\n").unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        for (p, want) in [(&plain, "{\"a\":1}\n"), (&gz, "{\"b\":2}\n")] {
            let mut s = String::new();
            open_stream(p).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, want);
        }
        let one = dir.path().join("one");
        std::fs::write(&one, b"x").unwrap();
        let mut s = String::new();
        open_stream(&one).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "x");
        assert!(same_file(&plain, &dir.path().join(".").join("a.jsonl")));
        assert!(!same_file(&plain, &gz));
    }
}

//! How many bytes a value takes as JSON, without building the JSON: pages
//! and batches are cut by bytes, and a 1 MiB KV value of control
//! characters is ~6 MiB once escaped, so counting entries is not enough.

use serde::Serialize;

/// The length of `value` serialised as JSON (0 if it cannot be).
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// A writer that only counts bytes.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::json_len;

    #[test]
    fn counts_escaped_bytes() {
        assert_eq!(json_len("ab"), 4);
        assert_eq!(json_len("\u{1}"), 8);
        assert_eq!(json_len(&[1, 2]), 5);
    }
}

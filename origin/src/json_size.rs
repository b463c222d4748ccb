//! How many bytes a value takes as JSON or CBOR, without building it:
//! pages and batches are cut by bytes, and a 1 MiB KV value of control
//! characters is ~6 MiB once escaped as JSON, so counting entries is not
//! enough.

use serde::Serialize;

/// The length of `value` serialised as JSON (0 if it cannot be).
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// The length of `value` encoded as CBOR, as Raft RPCs travel (0 if it
/// cannot be).
pub fn cbor_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    match ciborium::into_writer(value, &mut counter) {
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
    use super::{cbor_len, json_len};

    #[test]
    fn counts_escaped_bytes() {
        assert_eq!(json_len("ab"), 4);
        assert_eq!(json_len("\u{1}"), 8);
        assert_eq!(json_len(&[1, 2]), 5);
        let control = "\u{1}".repeat(1000);
        assert_eq!(json_len(&control), 6002);
        assert!(cbor_len(&control) <= 1003, "{}", cbor_len(&control));
    }
}

//! Identifiers. Streams, chat messages and reactions use ULIDs: unique without
//! coordination and sortable by creation time, which is what chat paging needs.

use ulid::Ulid;

/// A fresh ULID rendered in its canonical 26-character form.
pub fn new_id() -> String {
    Ulid::new().to_string()
}

/// True when `raw` is a canonical ULID. Paths carry ids from users, so they are checked
/// before they are used in a storage key.
pub fn is_valid_id(raw: &str) -> bool {
    raw.len() == 26 && Ulid::from_string(raw).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_increase() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(is_valid_id(&a) && is_valid_id(&b));
        assert!(a < b);
    }

    #[test]
    fn garbage_is_not_an_id() {
        for raw in [
            "",
            "live",
            "../etc",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "ID#01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert!(!is_valid_id(raw), "{raw}");
        }
    }
}

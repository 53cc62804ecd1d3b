//! Integer fields of request bodies that also accept a JSON number with a zero fraction
//! (`693.0`). JSON Schema's `integer`, which the OpenAPI document uses, is any number whose
//! fractional part is zero, and clients built on JavaScript numbers or generic JSON
//! serialisers send such values. A fraction, a negative or an out-of-range value is still
//! refused, with serde's error naming the field.
//!
//! Use with `#[serde(deserialize_with = "...")]` (add `default` on the optional forms, so a
//! missing field stays `None`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// An unsigned integer of type `T` read from any integral JSON number.
struct Integral<T>(T);

struct IntegralVisitor<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Visitor<'_> for IntegralVisitor<T> {
    type Value = Integral<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::try_from(v)
            .map(Integral)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let v = u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))?;
        self.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // 2^64 as f64; every integral f64 below it converts to u64 exactly.
        if v.fract() != 0.0 || !(0.0..18_446_744_073_709_551_616.0).contains(&v) {
            return Err(E::invalid_value(de::Unexpected::Float(v), &self));
        }
        self.visit_u64(v as u64)
    }
}

impl<'de, T: TryFrom<u64>> Deserialize<'de> for Integral<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_u64(IntegralVisitor(PhantomData))
    }
}

pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Integral::<u64>::deserialize(d).map(|i| i.0)
}

/// For `Option<u32>` fields (`#[serde(default, deserialize_with = ...)]`): `null` is `None`.
pub fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<Integral<u32>>::deserialize(d).map(|o| o.map(|i| i.0))
}

/// For `Option<u32>` fields that may be absent (`None`, with `default`) but not `null`.
pub fn some_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Integral::<u32>::deserialize(d).map(|i| Some(i.0))
}

/// For `Option<Option<u32>>` fields that tell absent (outer `None`, with `default`) from
/// `null` (`Some(None)`).
pub fn double_option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    option_u32(d).map(Some)
}

/// For `Vec<u32>` fields: every element any integral JSON number.
pub fn vec_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    Vec::<Integral<u32>>::deserialize(d).map(|v| v.into_iter().map(|i| i.0).collect())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::u64")]
        size: u64,
        #[serde(default, deserialize_with = "super::option_u32")]
        slow: Option<u32>,
        #[serde(default, deserialize_with = "super::double_option_u32")]
        max: Option<Option<u32>>,
        #[serde(default, deserialize_with = "super::some_u32")]
        strict: Option<u32>,
    }

    fn parse(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_read_as_integers() {
        let b = parse(r#"{"size": 333.0, "slow": 30.0, "max": 4500.0}"#).expect("accepted");
        assert_eq!((b.size, b.slow, b.max), (333, Some(30), Some(Some(4500))));
    }

    #[test]
    fn plain_integers_still_work_and_absent_differs_from_null() {
        let b = parse(r#"{"size": 1, "max": null}"#).expect("accepted");
        assert_eq!((b.size, b.slow, b.max), (1, None, Some(None)));
        let b = parse(r#"{"size": 1}"#).expect("accepted");
        assert_eq!(b.max, None);
    }

    #[test]
    fn a_field_that_may_not_be_null_is_absent_or_a_number() {
        assert_eq!(parse(r#"{"size": 1}"#).expect("absent").strict, None);
        assert_eq!(
            parse(r#"{"size": 1, "strict": 7.0}"#).expect("7").strict,
            Some(7)
        );
        assert!(parse(r#"{"size": 1, "strict": null}"#).is_err());
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        for bad in [
            r#"{"size": 1.5}"#,
            r#"{"size": -1}"#,
            r#"{"size": -1.0}"#,
            r#"{"size": 1e30}"#,
            r#"{"size": 1, "slow": 4294967296}"#,
            r#"{"size": 1, "slow": 4294967296.0}"#,
            r#"{"size": "1"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }
}

//! A `serde` deserializer over a parsed JSON body that holds it to the
//! shapes the OpenAPI document states: a struct is read only from a JSON
//! object (serde's derive would also take `[a, b]` as a struct's fields in
//! order, so `[null, null]` passed as a profile patch), and a whole-number
//! float (`5.0`) is read as an integer where one is expected (JSON Schema's
//! `integer` admits it), while `5.5` there is still refused. Only the integer
//! paths coerce: a free JSON value (`serde_json::Value`, read through
//! `deserialize_any`) keeps `1.0` a float.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Deserializes `T` from `value` with the rules above.
pub fn from_value<T: de::DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Strict(value))
}

/// A JSON value being deserialized strictly.
struct Strict(Value);

/// 2^63: the first float past `i64::MAX` (exactly representable, unlike it).
const I64_END: f64 = 9_223_372_036_854_775_808.0;
/// 2^64: the first float past `u64::MAX`.
const U64_END: f64 = 18_446_744_073_709_551_616.0;
/// 2^127: the first float past `i128::MAX`.
const I128_END: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

impl Strict {
    /// Reads an integer where one is expected: a whole-number float that
    /// fits `i64` or `u64` is visited as that integer (the visitor then checks
    /// its own range, so `300.0` for a `u8` is refused as `300` would be);
    /// `5.5`, `1e30` (past `u64`) and the rest go on as floats, and are refused.
    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match whole(&self.0) {
            Some(f) if (-I64_END..I64_END).contains(&f) => visitor.visit_i64(f as i64),
            Some(f) if (0.0..U64_END).contains(&f) => visitor.visit_u64(f as u64),
            _ => de::Deserializer::deserialize_any(self, visitor),
        }
    }

    /// As [`Strict::integer`], with the 128-bit range for `i128` and `u128`.
    fn integer128<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match whole(&self.0) {
            Some(f) if (-I64_END..I64_END).contains(&f) => visitor.visit_i64(f as i64),
            Some(f) if (-I128_END..I128_END).contains(&f) => visitor.visit_i128(f as i128),
            Some(f) if (0.0..2.0 * I128_END).contains(&f) => visitor.visit_u128(f as u128),
            _ => de::Deserializer::deserialize_any(self, visitor),
        }
    }
}

/// A JSON number that only a float holds (not an `i64` or `u64`) and that
/// has no fraction.
fn whole(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => None,
    }
}

macro_rules! integers {
    ($($method:ident => $via:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.$via(visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Strict {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(ArrayValues(items.into_iter())),
            Value::Object(fields) => visitor.visit_map(Fields {
                fields: fields.into_iter(),
                pending: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a JSON object",
            )),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // No body type has a data-carrying enum; serde_json's own rules apply.
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    integers! {
        deserialize_i8 => integer,
        deserialize_i16 => integer,
        deserialize_i32 => integer,
        deserialize_i64 => integer,
        deserialize_u8 => integer,
        deserialize_u16 => integer,
        deserialize_u32 => integer,
        deserialize_u64 => integer,
        deserialize_i128 => integer128,
        deserialize_u128 => integer128,
    }

    forward_to_deserialize_any! {
        bool f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

/// What a value is, for error messages.
fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// An array's items, each deserialized strictly.
struct ArrayValues(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for ArrayValues {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|value| seed.deserialize(Strict(value)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// An object's fields, each value deserialized strictly.
struct Fields {
    fields: <Map<String, Value> as IntoIterator>::IntoIter,
    pending: Option<Value>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.fields.next() else {
            return Ok(None);
        };
        self.pending = Some(value);
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was read before its key"))?;
        seed.deserialize(Strict(value))
    }
}

#[cfg(test)]
mod tests {
    use super::from_value;
    use serde::Deserialize;
    use serde_json::{json, Value};

    #[derive(Deserialize, Debug, PartialEq)]
    struct Body {
        count: i64,
        small: Option<u8>,
        wide: Option<i128>,
        free: Option<Value>,
    }

    fn body(value: Value) -> Result<Body, serde_json::Error> {
        from_value(value)
    }

    #[test]
    fn whole_floats_are_read_as_integers_where_integers_are_expected() {
        let read = body(json!({"count": 5.0, "small": 255.0, "wide": 1e30})).unwrap();
        assert_eq!(read.count, 5);
        assert_eq!(read.small, Some(255));
        assert_eq!(read.wide, Some(1_000_000_000_000_000_019_884_624_838_656));
        assert_eq!(body(json!({"count": -0.0})).unwrap().count, 0);
    }

    #[test]
    fn fractional_and_out_of_range_floats_are_refused_where_integers_are_expected() {
        for refused in [
            json!({"count": 5.5}),
            json!({"count": 1e19}),
            json!({"count": -1e30}),
            json!({"count": 1, "small": 256.0}),
            json!({"count": 1, "small": -1.0}),
            json!({"count": 1, "wide": 1e40}),
        ] {
            assert!(body(refused.clone()).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_free_json_value_keeps_its_floats() {
        let free = json!({"weight": 1.0, "ratio": 0.5, "nested": [2.0, {"n": 3.0}], "n": 4});
        let read = body(json!({"count": 1, "free": free.clone()})).unwrap();
        let read = read.free.unwrap();
        assert_eq!(read, free);
        assert!(read["weight"].is_f64());
        assert!(read["nested"][0].is_f64());
        assert!(read["nested"][1]["n"].is_f64());
        assert!(read["n"].is_i64());
    }

    #[test]
    fn a_struct_is_read_only_from_an_object() {
        assert!(body(json!([1, null, null, null])).is_err());
    }
}

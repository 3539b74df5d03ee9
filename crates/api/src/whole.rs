//! Whole numbers as JSON Schema counts them: `15` and `15.0` are both the integer 15,
//! so a request that writes either is read the same; in a query string, the text of
//! the number.

use serde::Deserializer;
use serde::de::{self, Visitor};

/// An optional whole number that fits `T`; `null` or absent is `None`.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole;

    impl<'v> Visitor<'v> for Whole {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("{v} is not a whole number in range")))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
                Ok(Some(v as u64))
            } else {
                Err(E::custom(format!("{v} is not a whole number in range")))
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let t = v.trim();
            match t.parse::<u64>() {
                Ok(n) => Ok(Some(n)),
                Err(_) => t
                    .parse::<f64>()
                    .map_err(|_| E::custom(format!("'{v}' is not a whole number")))
                    .and_then(|f| self.visit_f64(f)),
            }
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<V: Deserializer<'v>>(self, d: V) -> Result<Self::Value, V::Error> {
            d.deserialize_any(Whole)
        }
    }

    match d.deserialize_any(Whole)? {
        None => Ok(None),
        Some(u) => T::try_from(u)
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{u} is out of range"))),
    }
}

/// A whole number that fits `T`; `null` is refused (an absent field is serde's
/// "missing field" error).
pub fn required<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    optional(d)?.ok_or_else(|| de::Error::custom("a whole number is required, not null"))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        n: Option<u32>,
    }

    fn read(json: &str) -> Result<Option<u32>, serde_json::Error> {
        serde_json::from_str::<Body>(json).map(|b| b.n)
    }

    #[test]
    fn integral_floats_are_whole_numbers() {
        assert_eq!(read(r#"{"n": 15}"#).unwrap(), Some(15));
        assert_eq!(read(r#"{"n": 15.0}"#).unwrap(), Some(15));
        assert_eq!(read(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(read(r#"{}"#).unwrap(), None);
        assert!(read(r#"{"n": 15.5}"#).is_err());
        assert!(read(r#"{"n": -1}"#).is_err());
        assert!(read(r#"{"n": 5000000000}"#).is_err());
        assert!(
            read(r#"{"n": "15"}"#).is_ok(),
            "text, as a query string holds it"
        );
    }
}

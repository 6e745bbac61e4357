//! The one place values become bytes: bincode 2 behind a version byte.
//!
//! Every stored value is `[version][bincode body]`. The version is per record
//! kind, so one kind's format can change (and old bytes be migrated on read)
//! without touching the others, and so the encoder itself can be swapped here
//! without any caller knowing.

use bincode::config::{self, Configuration};

use super::StorageError;

/// A value kind that may be stored.
pub trait Record: bincode::Encode + bincode::Decode<()> {
    /// Human-readable kind, for error messages.
    const KIND: &'static str;
    /// Format version written in front of every encoded value.
    const VERSION: u8;

    /// Reads bytes written by an older format version (the body after the
    /// version byte), migrating them to the current shape. `None`: the
    /// version is unknown.
    fn decode_legacy(_version: u8, _body: &[u8]) -> Option<Result<Self, StorageError>> {
        None
    }
}

/// Decodes a body of any bincode type with the codec's settings, refusing
/// trailing bytes (for [`Record::decode_legacy`] implementations).
pub fn decode_body<T: bincode::Decode<()>>(
    kind: &'static str,
    body: &[u8],
) -> Result<T, StorageError> {
    let corrupt = |reason: String| StorageError::Codec { kind, reason };
    let (value, used) =
        bincode::decode_from_slice(body, settings()).map_err(|e| corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(corrupt(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

fn settings() -> Configuration {
    config::standard()
}

/// Encodes `record` as `[VERSION][bincode]`.
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(128);
    out.push(R::VERSION);
    bincode::encode_into_std_write(record, &mut out, settings()).map_err(|e| {
        StorageError::Codec {
            kind: R::KIND,
            reason: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Decodes bytes written by [`encode`]; an unknown version or trailing
/// garbage is reported, never guessed at.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, StorageError> {
    let corrupt = |reason: String| StorageError::Codec {
        kind: R::KIND,
        reason,
    };
    match bytes.split_first() {
        Some((&version, body)) if version == R::VERSION => decode_body(R::KIND, body),
        Some((&version, body)) => R::decode_legacy(version, body)
            .unwrap_or_else(|| Err(corrupt(format!("unknown format version {version}")))),
        None => Err(corrupt("empty value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, bincode::Encode, bincode::Decode)]
    struct Sample {
        name: String,
        count: i64,
    }

    impl Record for Sample {
        const KIND: &'static str = "sample";
        const VERSION: u8 = 3;
    }

    #[test]
    fn round_trips_and_rejects_foreign_versions() {
        let sample = Sample {
            name: "mouse".into(),
            count: -4,
        };
        let bytes = encode(&sample).unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample);
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(decode::<Sample>(&other).is_err());
        assert!(decode::<Sample>(&[]).is_err());
        let mut long = bytes;
        long.push(0);
        assert!(decode::<Sample>(&long).is_err());
    }
}

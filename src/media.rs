//! Item media (the design's blob storage): images stored content-addressed
//! under `<data>/media`, named by the SHA-256 of their bytes.
//!
//! A file is written to a temporary name, synced, and renamed into place,
//! so a key that exists always names complete bytes (and survives
//! `kill -9`). Files are never deleted: the same key serves every item and
//! order that ever named it.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest image accepted.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// Image formats accepted, by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
}

impl ImageType {
    /// The format the bytes really are, if accepted.
    pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageType::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageType::Webp)
        } else {
            None
        }
    }

    /// The format a `Content-Type` names, if accepted.
    pub fn from_content_type(value: &str) -> Option<ImageType> {
        match value
            .split(';')
            .next()?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "image/png" => Some(ImageType::Png),
            "image/jpeg" | "image/jpg" => Some(ImageType::Jpeg),
            "image/webp" => Some(ImageType::Webp),
            _ => None,
        }
    }

    /// The `Content-Type` to serve.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
        }
    }
}

/// The media store.
#[derive(Clone)]
pub struct Media {
    dir: PathBuf,
}

/// Whether `key` has the shape of a media key (64 lower-case hex digits).
pub fn is_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Media {
    /// Media under `data_dir/media`.
    pub fn new(data_dir: &Path) -> Media {
        Media {
            dir: data_dir.join("media"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(key)
    }

    /// Stores `bytes` (blocking: call on the blocking pool); returns the key.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let key = format!("{:x}", Sha256::digest(bytes));
        let path = self.path(&key);
        if path.exists() {
            return Ok(key);
        }
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir)?;
        let temporary = dir.join(format!(".{key}.{}", std::process::id()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(key)
    }

    /// The bytes under `key` (blocking), if any.
    pub fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        if !is_key(key) {
            return Ok(None);
        }
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

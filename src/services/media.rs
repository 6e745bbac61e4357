//! Item media (the design's blob storage): images stored content-addressed
//! under `<data>/media`, named by the SHA-256 of their bytes.
//!
//! A file is written to a temporary name, synced, and renamed into place,
//! so a key that exists always names complete bytes (and survives
//! `kill -9`). Files are never deleted: the same key serves every item and
//! order that ever named it.
//!
//! Every upload is decoded in full before it is stored ([`ImageType::check`]),
//! so what `/media` serves is an image of its type, not a file that merely
//! starts with an image's magic bytes (a polyglot of PNG header and HTML).
//!
//! In a cluster an upload is also put into the bucket every node shares
//! ([`SharedMedia`]) before it is answered, and a node asked for a key it
//! does not hold fetches it from there, checks that the bytes hash to the
//! key, and keeps a copy: each node fetches an image at most once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use tokio::sync::Semaphore;

use sha2::{Digest, Sha256};

use crate::cluster::{SharedMedia, Unreachable};

/// Largest image accepted.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// Widest and tallest image accepted, in pixels: a decompression bomb (a
/// small file that declares a huge canvas) is refused from its header.
pub const MAX_IMAGE_SIDE: u32 = 8_192;
/// Most memory one decode may allocate: 128 MiB is a 4096 × 8192 RGBA
/// canvas; anything larger is refused rather than allocated.
pub const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;

/// Why an upload was refused by [`ImageType::check`].
#[derive(Debug, thiserror::Error)]
pub enum ImageRejected {
    /// Over [`MAX_IMAGE_SIDE`] or [`MAX_DECODE_BYTES`].
    #[error("the image is larger than {MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE} pixels or needs too much memory to decode")]
    TooLarge,
    /// Not a complete image of the declared type.
    #[error("the bytes are not a complete {0} image")]
    Undecodable(&'static str),
}

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

    /// Decodes `bytes` in full as this type, within the size limits
    /// (blocking, and up to [`MAX_DECODE_BYTES`] of memory and tens of
    /// milliseconds of CPU for a large photo: run it on the blocking pool).
    /// The pixels are dropped: the original bytes are what is stored.
    pub fn check(self, bytes: &[u8]) -> Result<(), ImageRejected> {
        let format = match self {
            ImageType::Png => image::ImageFormat::Png,
            ImageType::Jpeg => image::ImageFormat::Jpeg,
            ImageType::Webp => image::ImageFormat::WebP,
        };
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_IMAGE_SIDE);
        limits.max_image_height = Some(MAX_IMAGE_SIDE);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
        reader.limits(limits);
        match reader.decode() {
            Ok(_) => Ok(()),
            Err(image::ImageError::Limits(_)) => Err(ImageRejected::TooLarge),
            Err(_) => Err(ImageRejected::Undecodable(self.content_type())),
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

/// Why an image could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The local file system failed.
    #[error("media storage: {0}")]
    Io(#[from] std::io::Error),
    /// In a cluster: the shared bucket did not answer.
    #[error(transparent)]
    SharedUnreachable(#[from] Unreachable),
}

/// The media store.
#[derive(Clone)]
pub struct MediaService {
    dir: PathBuf,
    /// In a cluster, the bucket every node shares (`None`: this node only).
    shared: Option<SharedMedia>,
    /// Bounds concurrent decodes to the number of cores, so a burst of
    /// uploads costs at most that many times [`MAX_DECODE_BYTES`] of memory
    /// and cannot take over the blocking pool that sled reads share.
    decoding: Arc<Semaphore>,
}

/// Whether `key` has the shape of a media key (64 lower-case hex digits).
pub fn is_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl MediaService {
    /// Media under `data_dir/media`.
    pub fn new(data_dir: &Path) -> MediaService {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        MediaService {
            dir: data_dir.join("media"),
            shared: None,
            decoding: Arc::new(Semaphore::new(cores)),
        }
    }

    /// The same store, sharing every image with the cluster through
    /// `shared`.
    pub fn with_shared(mut self, shared: SharedMedia) -> MediaService {
        self.shared = Some(shared);
        self
    }

    /// Stores `bytes` here (on the blocking pool) and, in a cluster, in the
    /// shared bucket; returns the key. In a cluster, `Err` unless both hold
    /// it (a file kept here alone is harmless: it is named by its bytes).
    pub async fn store(&self, bytes: Bytes) -> Result<String, MediaError> {
        let media = self.clone();
        let local = bytes.clone();
        let key = tokio::task::spawn_blocking(move || media.put(&local))
            .await
            .map_err(std::io::Error::other)??;
        if let Some(shared) = &self.shared {
            shared.put(&key, &bytes).await?;
        }
        Ok(key)
    }

    /// The bytes under `key`: from this node's files, else (in a cluster)
    /// from the shared bucket, keeping a copy here. `None`: nowhere.
    pub async fn load(&self, key: &str) -> Result<Option<Bytes>, MediaError> {
        let media = self.clone();
        let lookup = key.to_owned();
        let local = tokio::task::spawn_blocking(move || media.get(&lookup))
            .await
            .map_err(std::io::Error::other)??;
        let (Some(shared), None, true) = (&self.shared, &local, is_key(key)) else {
            return Ok(local.map(Bytes::from));
        };
        let Some(bytes) = shared.get(key).await? else {
            return Ok(None);
        };
        if format!("{:x}", Sha256::digest(&bytes)) != key {
            tracing::warn!(key, "shared media bytes do not match their key; not served");
            return Ok(None);
        }
        metrics::counter!("agora_media_fetched_total").increment(1);
        let media = self.clone();
        let bytes = Bytes::from(bytes);
        let copy = bytes.clone();
        // Served even if the copy fails: the next request fetches again.
        match tokio::task::spawn_blocking(move || media.put(&copy)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(key, error = %e, "keeping fetched media failed"),
            Err(e) => tracing::warn!(key, error = %e, "keeping fetched media failed"),
        }
        Ok(Some(bytes))
    }

    /// [`ImageType::check`] on the blocking pool, one decode per core at a
    /// time (others wait their turn). A decoder that panics on hostile
    /// bytes refuses the image rather than failing the request.
    pub async fn check_image(&self, kind: ImageType, bytes: Bytes) -> Result<(), ImageRejected> {
        // The permit travels with the decode, not with this future: a
        // request cancelled mid-decode (the client hung up, a timeout) must
        // keep its slot until the blocking job really ends, or abandoned
        // decodes could pile up past the limit.
        let slot = self.decoding.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            kind.check(&bytes)
        })
        .await
        .unwrap_or(Err(ImageRejected::Undecodable(kind.content_type())))
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

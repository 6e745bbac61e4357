//! Media every node serves: the `agora_media` JetStream object store.
//!
//! An upload is stored on the node that takes it and put here, under its
//! content key, before it is answered; a node asked for a key it does not
//! hold fetches it from here once and keeps a copy. The object store cuts a
//! value into 128 KiB chunks (one message each, well under the server's
//! 1 MB `max_payload`), so the 5 MiB upload limit needs no NATS setting.
//! Keys name their bytes (SHA-256), so a key put twice is put once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::object_store::{self, GetErrorKind, InfoErrorKind, ObjectStore};
use async_nats::jetstream::{self, stream::StorageType};
use tokio::io::AsyncReadExt;

use super::{connected, ClusterError, Unreachable};

/// The object store bucket images live in.
pub const MEDIA_BUCKET: &str = "agora_media";
/// The longest a put or get of one image may take (5 MiB in 40 chunks,
/// each acknowledged, on a slow link).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest creating or opening the bucket may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster's media bucket. Cheap to clone.
#[derive(Clone)]
pub struct SharedMedia {
    jetstream: jetstream::Context,
    /// Replaced when a call fails (NATS may have come back without it).
    bucket: Arc<Mutex<ObjectStore>>,
}

impl SharedMedia {
    /// Creates the bucket (file storage, kept forever), or opens it if
    /// another node did.
    pub(super) async fn open(jetstream: &jetstream::Context) -> Result<SharedMedia, ClusterError> {
        let bucket = open_bucket(jetstream).await?;
        Ok(SharedMedia {
            jetstream: jetstream.clone(),
            bucket: Arc::new(Mutex::new(bucket)),
        })
    }

    /// Puts `bytes` under `key` unless the bucket already holds it.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), Unreachable> {
        connected(&self.jetstream)?;
        let bucket = self.bucket();
        let put = async {
            match bucket.info(key).await {
                Ok(info) if !info.deleted && info.size == bytes.len() => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == InfoErrorKind::NotFound => {}
                Err(e) => return Err(Unreachable(e.to_string())),
            }
            let mut reader = bytes;
            bucket
                .put(key, &mut reader)
                .await
                .map(|_| ())
                .map_err(|e| Unreachable(e.to_string()))
        };
        let put = tokio::time::timeout(CALL_TIMEOUT, put)
            .await
            .unwrap_or_else(|_| Err(Unreachable("timed out".into())));
        if put.is_err() {
            self.reopen();
        }
        put
    }

    /// The bytes under `key`, or `None` when the bucket has none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unreachable> {
        connected(&self.jetstream)?;
        let bucket = self.bucket();
        let get = async {
            let mut object = match bucket.get(key).await {
                Ok(object) => object,
                Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Unreachable(e.to_string())),
            };
            let mut bytes = Vec::with_capacity(object.info().size);
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| Unreachable(e.to_string()))?;
            Ok(Some(bytes))
        };
        let got = tokio::time::timeout(CALL_TIMEOUT, get)
            .await
            .unwrap_or_else(|_| Err(Unreachable("timed out".into())));
        if got.is_err() {
            self.reopen();
        }
        got
    }

    fn bucket(&self) -> ObjectStore {
        self.bucket.lock().unwrap().clone()
    }

    /// Opens (or creates) the bucket again for the next calls, in the
    /// background: after a failure NATS may have come back with an empty
    /// store.
    fn reopen(&self) {
        let media = self.clone();
        tokio::spawn(async move {
            if let Ok(bucket) = open_bucket(&media.jetstream).await {
                *media.bucket.lock().unwrap() = bucket;
            }
        });
    }
}

/// Opens the media bucket, creating it (file storage, kept forever) if no
/// node has yet.
async fn open_bucket(jetstream: &jetstream::Context) -> Result<ObjectStore, ClusterError> {
    let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
        match jetstream.get_object_store(MEDIA_BUCKET).await {
            Ok(bucket) => Ok(bucket),
            Err(_) => jetstream
                .create_object_store(object_store::Config {
                    bucket: MEDIA_BUCKET.to_owned(),
                    description: Some("Agora item images by SHA-256".to_owned()),
                    storage: StorageType::File,
                    num_replicas: super::task::replicas(),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string()),
        }
    })
    .await;
    let reason = match opened {
        Ok(Ok(bucket)) => return Ok(bucket),
        Ok(Err(e)) => e,
        Err(_) => "timed out".to_owned(),
    };
    Err(ClusterError::JetStream(format!(
        "creating the {MEDIA_BUCKET} object store: {reason}"
    )))
}

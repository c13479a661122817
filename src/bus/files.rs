//! Stored files: the object store bucket `files` (stream `OBJ_<ns>-files`),
//! which the API writes (`PUT /api/v1/files/{name}`) and agents read to
//! deploy (`file.deploy`).
//!
//! Each object carries its SHA-256 (hex, computed here on upload) and its
//! uploader in its metadata; an upload of the same bytes again leaves the
//! object as it is. Objects are at most [`MAX_FILE_BYTES`]; the bucket at
//! most [`BUCKET_MAX_BYTES`], after which uploads are refused (discard new).

use async_nats::jetstream::{self, object_store, stream};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use utoipa::ToSchema;

use super::{BusError, Names};
use crate::job::MAX_FILE_BYTES;
use crate::provider::files::{Fetched, FileSource, sha256_hex};
use crate::provider::{BoxFuture, ProviderError, ProviderResult};

/// The bucket's name under the namespace.
pub const FILES_BUCKET: &str = "files";
/// Everything the bucket may hold.
pub const BUCKET_MAX_BYTES: i64 = 1024 * 1024 * 1024;

/// A stored file, as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct StoredFile {
    pub name: String,
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// When it was uploaded.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub uploaded_at: Option<OffsetDateTime>,
    /// Who uploaded it (the token's subject).
    #[serde(default)]
    pub uploaded_by: String,
}

/// The result of an upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Uploaded {
    /// False when the same bytes were stored under the name already.
    pub changed: bool,
    pub file: StoredFile,
}

/// The stream behind the bucket, as the object store makes it.
pub fn stream_config(
    names: &Names,
    replicas: usize,
    storage: stream::StorageType,
) -> stream::Config {
    let bucket = names.resource(FILES_BUCKET);
    stream::Config {
        name: format!("OBJ_{bucket}"),
        subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
        max_bytes: BUCKET_MAX_BYTES,
        storage,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        ..Default::default()
    }
}

/// The bucket, opened.
#[derive(Clone)]
pub struct FileStore {
    store: object_store::ObjectStore,
}

impl FileStore {
    /// Opens the bucket (made by provisioning).
    pub async fn open(js: &jetstream::Context, names: &Names) -> Result<FileStore, BusError> {
        let store = js
            .get_object_store(names.resource(FILES_BUCKET))
            .await
            .map_err(|e| BusError::request("opening the file store", e))?;
        Ok(FileStore { store })
    }

    /// Stores `bytes` under `name` unless the same bytes are there.
    pub async fn put(&self, name: &str, bytes: &[u8], by: &str) -> Result<Uploaded, BusError> {
        let sha256 = sha256_hex(bytes);
        if let Some(current) = self.info(name).await?
            && current.sha256 == sha256
        {
            return Ok(Uploaded {
                changed: false,
                file: current,
            });
        }
        let meta = object_store::ObjectMetadata {
            name: name.to_owned(),
            metadata: [
                ("sha256".to_owned(), sha256),
                ("uploaded_by".to_owned(), by.to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        let mut reader = bytes;
        let info = self
            .store
            .put(meta, &mut reader)
            .await
            .map_err(|e| BusError::request("storing a file", e))?;
        Ok(Uploaded {
            changed: true,
            file: stored(info),
        })
    }

    /// The file stored under `name`, if any.
    pub async fn info(&self, name: &str) -> Result<Option<StoredFile>, BusError> {
        match self.store.info(name).await {
            Ok(info) if !info.deleted => Ok(Some(stored(info))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(BusError::request("reading a file's info", e)),
        }
    }

    /// Every stored file, by name.
    pub async fn list(&self) -> Result<Vec<StoredFile>, BusError> {
        use futures::TryStreamExt as _;
        let mut all: Vec<StoredFile> = self
            .store
            .list()
            .await
            .map_err(|e| BusError::request("listing files", e))?
            .map_ok(stored)
            .try_collect()
            .await
            .map_err(|e| BusError::request("listing files", e))?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Removes `name`; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, BusError> {
        if self.info(name).await?.is_none() {
            return Ok(false);
        }
        self.store
            .delete(name)
            .await
            .map_err(|e| BusError::request("deleting a file", e))?;
        Ok(true)
    }

    /// The content of `name`, checked against the SHA-256 it was stored with.
    async fn get(&self, name: &str) -> ProviderResult<Fetched> {
        let unavailable = |e: &dyn std::fmt::Display| ProviderError::Unavailable {
            service: "the file store",
            detail: e.to_string(),
        };
        let Some(info) = self.info(name).await.map_err(|e| unavailable(&e))? else {
            return Err(ProviderError::NotFound {
                what: "stored file",
                name: name.to_owned(),
            });
        };
        if info.size > MAX_FILE_BYTES as u64 {
            return Err(unavailable(&format!(
                "{name} is larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        let mut object = self.store.get(name).await.map_err(|e| unavailable(&e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| unavailable(&e))?;
        let sha256 = sha256_hex(&bytes);
        if sha256 != info.sha256 {
            return Err(unavailable(&format!(
                "{name} read back with SHA-256 {sha256}, stored as {}",
                info.sha256
            )));
        }
        Ok(Fetched { bytes, sha256 })
    }
}

impl FileSource for FileStore {
    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<Fetched>> {
        Box::pin(self.get(name))
    }
}

/// The bucket for an agent, opened when it first deploys a file: an agent
/// never waits for it at start (an older API may not have made it yet).
pub struct LazyFileStore {
    js: jetstream::Context,
    names: Names,
    store: tokio::sync::OnceCell<FileStore>,
}

impl LazyFileStore {
    pub fn new(js: jetstream::Context, names: Names) -> Self {
        LazyFileStore {
            js,
            names,
            store: tokio::sync::OnceCell::new(),
        }
    }
}

impl FileSource for LazyFileStore {
    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<Fetched>> {
        Box::pin(async move {
            let store = self
                .store
                .get_or_try_init(|| FileStore::open(&self.js, &self.names))
                .await
                .map_err(|e| ProviderError::Unavailable {
                    service: "the file store",
                    detail: e.to_string(),
                })?;
            store.get(name).await
        })
    }
}

fn stored(info: object_store::ObjectInfo) -> StoredFile {
    StoredFile {
        size: info.size as u64,
        sha256: info.metadata.get("sha256").cloned().unwrap_or_default(),
        uploaded_by: info
            .metadata
            .get("uploaded_by")
            .cloned()
            .unwrap_or_default(),
        uploaded_at: info.modified,
        name: info.name,
    }
}

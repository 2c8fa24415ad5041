//! Secrets at rest: provider tokens and outbound signing keys are stored sealed
//! with XChaCha20-Poly1305 under `RELEVO_SECRET_KEY` (32 bytes, base64), or a
//! key generated into `<data_dir>/secret-key` on first start.
//!
//! A sealed value is `version (1) ‖ nonce (24) ‖ ciphertext+tag`. Each value is
//! bound to what it is (`context`, e.g. `highlevel:refresh:<location>`) as
//! associated data, so a ciphertext copied onto another row does not open.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_FILE: &str = "secret-key";
/// The sealed probe stored once per database: a key that cannot open it is
/// not the key the stored secrets were sealed with.
const PROBE_CONTEXT: &str = "relevo:key-check";
const PROBE: &[u8] = b"relevo";

/// Seals and opens secrets with the node's key. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    cipher: std::sync::Arc<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed {context} does not open with RELEVO_SECRET_KEY (tampered, moved, or sealed with another key)")]
pub struct OpenError {
    pub context: String,
}

impl Sealer {
    /// A sealer from the raw 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: std::sync::Arc::new(XChaCha20Poly1305::new(key.into())),
        }
    }

    /// `RELEVO_SECRET_KEY` when set, else `<data_dir>/secret-key` (created with a
    /// random key, mode 0600, on first start).
    pub fn load(configured: Option<&SecretString>, data_dir: &Path) -> anyhow::Result<Self> {
        let encoded = match configured {
            Some(key) => key.expose_secret().trim().to_owned(),
            None => load_or_create_key_file(data_dir)?,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .context("RELEVO_SECRET_KEY must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")?;
        Ok(Self::from_key(&bytes))
    }

    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encrypts any length we store");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let fail = || OpenError { context: context.split(':').take(2).collect::<Vec<_>>().join(":") };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(fail());
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
        self.cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| fail())
    }

    pub fn seal_str(&self, context: &str, secret: &SecretString) -> Vec<u8> {
        self.seal(context, secret.expose_secret().as_bytes())
    }

    pub fn open_str(&self, context: &str, sealed: &[u8]) -> Result<SecretString, OpenError> {
        let plain = self.open(context, sealed)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| OpenError { context: context.to_owned() })
    }

    /// Stores the probe on first use; afterwards refuses a key that cannot
    /// open it, so a lost or changed key stops start-up with a clear message
    /// instead of failing every token and delivery later.
    pub async fn check_against(&self, pool: &PgPool) -> anyhow::Result<()> {
        let probe = self.seal(PROBE_CONTEXT, PROBE);
        sqlx::query!("insert into sealing_probe (id, sealed) values (1, $1) on conflict (id) do nothing", probe)
            .execute(pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar!("select sealed from sealing_probe where id = 1").fetch_one(pool).await?;
        match self.open(PROBE_CONTEXT, &stored) {
            Ok(plain) if plain == PROBE => Ok(()),
            _ => anyhow::bail!(
                "RELEVO_SECRET_KEY is not the key this database's secrets were sealed with \
                 (restore the previous key, or <data_dir>/secret-key)"
            ),
        }
    }
}

/// Reads `<data_dir>/secret-key`, or publishes a new random key there
/// atomically (written aside, then hard-linked into place), so concurrent
/// first starts agree on one key.
fn load_or_create_key_file(data_dir: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    let aside = data_dir.join(format!(".{KEY_FILE}.{}", uuid::Uuid::now_v7()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("cannot write {}", aside.display()))?;
    std::io::Write::write_all(&mut file, encoded.as_bytes())?;
    file.sync_all()?;
    let published = std::fs::hard_link(&aside, &path);
    let _ = std::fs::remove_file(&aside);
    match published {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the secret key that seals stored tokens; back it up with the database");
            Ok(encoded)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read_to_string(&path)?.trim().to_owned()),
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let sealer = Sealer::from_key(&[7; 32]);
        let sealed = sealer.seal("highlevel:refresh:L1", b"rt-1");
        assert_ne!(&sealed[1 + NONCE_LEN..], b"rt-1");
        assert_eq!(sealer.open("highlevel:refresh:L1", &sealed).unwrap(), b"rt-1");
        assert!(sealer.open("highlevel:refresh:L2", &sealed).is_err());
        assert!(Sealer::from_key(&[8; 32]).open("highlevel:refresh:L1", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sealer.open("highlevel:refresh:L1", &tampered).is_err());
        assert!(sealer.open("x", &[]).is_err());
        // Two seals of one value differ (fresh nonce each time).
        assert_ne!(sealed, sealer.seal("highlevel:refresh:L1", b"rt-1"));
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key_file(dir.path()).unwrap();
        assert_eq!(load_or_create_key_file(dir.path()).unwrap(), first);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        Sealer::load(None, dir.path()).unwrap();
        let bad = SecretString::from("c2hvcnQ=");
        assert!(Sealer::load(Some(&bad), dir.path()).unwrap_err().to_string().contains("32 bytes"));
    }
}

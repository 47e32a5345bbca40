//! The quick start: with no key material named, `gateway serve` makes (once) a complete
//! development setup in the state directory and runs on it: a root key, an issuer key and
//! its trust list, a policy signed by that root, a pseudonym key, an API key for one
//! caller, a self-signed certificate, a feed key and an empty feed file. Nothing here is unsigned:
//! the gateway runs exactly as in production, only with keys it made itself.

use std::fs;
use std::path::{Path, PathBuf};

use gateway_core::b64;
use gateway_core::feed_auth::FeedKey;
use gateway_core::policy::reference_policy_json;

use crate::events::Writer;
use crate::keys::{self, random32};
use crate::mint::{Issuer, RootSigner};
use crate::publish::Publisher;
use crate::{owner_only, IssueError};

/// The development issuer's key id.
pub const DEV_KID: &str = "dev-issuer-1";
/// The development issuer's name.
pub const DEV_ISSUER: &str = "CN-33";

/// The layout of a state directory and the development setup made in it.
pub struct DevSetup {
    /// The state directory.
    pub dir: PathBuf,
}

#[allow(missing_docs)] // one path per file, named for it
impl DevSetup {
    pub fn new(dir: &Path) -> Self {
        DevSetup {
            dir: dir.to_path_buf(),
        }
    }
    pub fn root_seed(&self) -> PathBuf {
        self.dir.join("root.seed")
    }
    pub fn root_pub(&self) -> PathBuf {
        self.dir.join("root.pub")
    }
    pub fn issuer_seed(&self) -> PathBuf {
        self.dir.join("issuer.seed")
    }
    pub fn trust(&self) -> PathBuf {
        self.dir.join("trust.json")
    }
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.signed")
    }
    pub fn pseudonym_key(&self) -> PathBuf {
        self.dir.join("pseudonym.key")
    }
    pub fn api_key(&self) -> PathBuf {
        self.dir.join("api.key")
    }
    pub fn callers(&self) -> PathBuf {
        self.dir.join("callers.json")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls/cert.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("tls/key.pem")
    }
    pub fn feed(&self) -> PathBuf {
        self.dir.join("feed.jsonl")
    }
    /// The feed key (feed.md revision 3) the quick start's events are authenticated with.
    pub fn feed_key(&self) -> PathBuf {
        self.dir.join("feed.key")
    }

    /// The feed key, if the setup has one.
    pub fn read_feed_key(&self) -> Result<Option<FeedKey>, IssueError> {
        let path = self.feed_key();
        if !path.exists() {
            return Ok(None);
        }
        keys::read_feed_key(&path).map(Some)
    }

    /// The issuer that signs development codes.
    pub fn issuer(&self) -> Result<Issuer, IssueError> {
        Ok(Issuer {
            kid: DEV_KID.as_bytes().to_vec(),
            issuer: DEV_ISSUER.into(),
            key: keys::read_issuer_key(&self.issuer_seed())?,
        })
    }

    /// Creates whatever is missing; returns whether anything was created.
    pub fn ensure(&self) -> Result<bool, IssueError> {
        let err = |p: &Path, e: std::io::Error| IssueError::file(p, e);
        owner_only::dir(&self.dir.join("tls")).map_err(|e| err(&self.dir, e))?;
        let mut made = false;
        if !self.root_seed().exists() {
            let root = RootSigner::from_seed(&random32()?);
            write(&self.root_seed(), &b64::encode(&root.seed()))?;
            write(&self.root_pub(), &root.public_b64())?;
            // A new root invalidates anything it signed before.
            let _ = fs::remove_file(self.policy());
            made = true;
        }
        let root = keys::read_root_signer(&self.root_seed())?;
        if !self.issuer_seed().exists() {
            write(&self.issuer_seed(), &b64::encode(&random32()?))?;
            let _ = fs::remove_file(self.trust());
            made = true;
        }
        if !self.trust().exists() {
            let now = crate::unix_now() as i64;
            let entry = self.issuer()?.trust_entry(now - 86_400, now + 365 * 86_400);
            let doc = serde_json::json!({"keys": [{
                "kid": entry.kid, "issuer": entry.issuer, "alg": entry.alg,
                "public_key": entry.public_key, "not_before": entry.not_before, "not_after": entry.not_after,
            }]});
            write(
                &self.trust(),
                &serde_json::to_string_pretty(&doc).unwrap_or_default(),
            )?;
            made = true;
        }
        if !self.policy().exists() {
            write(
                &self.policy(),
                &root.sign_doc(reference_policy_json(1).as_bytes()),
            )?;
            made = true;
        }
        if !self.pseudonym_key().exists() {
            write(&self.pseudonym_key(), &b64::encode(&random32()?))?;
            made = true;
        }
        if !self.feed_key().exists() {
            write(&self.feed_key(), &b64::encode(&random32()?))?;
            made = true;
        }
        if !self.api_key().exists() || !self.callers().exists() {
            let key = format!("dev-{}", b64::encode(&random32()?));
            write(&self.api_key(), &key)?;
            let callers = serde_json::json!({"callers": [{
                "name": "dev", "api_key_sha256": sha256_hex(key.as_bytes()),
                "venues": ["*"], "rate_per_s": 1_000_000, "card_rate_per_s": 10_000,
                "offline": true,
            }]});
            write(
                &self.callers(),
                &serde_json::to_string_pretty(&callers).unwrap_or_default(),
            )?;
            made = true;
        }
        if !self.cert().exists() || !self.key().exists() {
            let names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            let ck = rcgen::generate_simple_self_signed(names)
                .map_err(|e| IssueError::key("self-signed certificate", e))?;
            write(&self.cert(), &ck.cert.pem())?;
            write(&self.key(), &ck.signing_key.serialize_pem())?;
            made = true;
        }
        if !self.feed().exists() {
            owner_only::write(&self.feed(), b"").map_err(|e| err(&self.feed(), e))?;
            made = true;
        }
        // A state made before files were owner-only: its files are narrowed to 0600.
        for f in self.files() {
            owner_only::narrow(&f).map_err(|e| err(&f, e))?;
        }
        Ok(made)
    }

    /// The URI of the quick start's status list (`offline.md`): its NAME begins with the
    /// development issuer's `iss`.
    pub const STATUS_LIST_URI: &'static str = "https://localhost/status-lists/CN-33-dev";

    /// Indices in the quick start's status list.
    pub const STATUS_LIST_SIZE: usize = 4096;

    /// Offline gates for the quick start (`offline.md`): appends to the development feed
    /// the root-signed document of the development issuer's key (once: validators trust
    /// only root-signed keys, and the trust file travels in no bundle) and a fresh status
    /// list of that issuer, every index green, so `validator sync` and `validator check`
    /// work at once.
    pub fn publish_offline(&self) -> Result<(), IssueError> {
        use std::io::Write;
        let feed = self.feed();
        let text = fs::read_to_string(&feed).map_err(|e| IssueError::file(&feed, e))?;
        let issuer = self.issuer()?;
        let mut lines = String::new();
        if !text.contains("\"type\":\"key\"") {
            let root = keys::read_root_signer(&self.root_seed())?;
            let now = crate::unix_now() as i64;
            let entry = issuer.trust_entry(now - 86_400, now + 365 * 86_400);
            lines.push_str(&root.key_add_event_seq(&entry, Some(1)));
            lines.push('\n');
        }
        let now = crate::unix_now();
        let bits = gateway_core::offline::bits::TwoBits::zeros(Self::STATUS_LIST_SIZE);
        let list = issuer
            .sign_status_list(&gateway_core::offline::list::NewList {
                iss: &issuer.issuer,
                uri: Self::STATUS_LIST_URI,
                iat: now,
                exp: Some(now + 7 * 86_400),
                ttl: Some(300),
                bits: &bits,
                revoked: &[],
            })
            .map_err(|e| IssueError::key("status list", e))?;
        lines.push_str(&crate::events::Writer::new(None).status_list(&list));
        lines.push('\n');
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&feed)
            .map_err(|e| IssueError::file(&feed, e))?;
        f.write_all(lines.as_bytes())
            .map_err(|e| IssueError::file(&feed, e))
    }

    /// Every file of the development state.
    fn files(&self) -> [PathBuf; 12] {
        [
            self.feed_key(),
            self.root_seed(),
            self.root_pub(),
            self.issuer_seed(),
            self.trust(),
            self.policy(),
            self.pseudonym_key(),
            self.api_key(),
            self.callers(),
            self.cert(),
            self.key(),
            self.feed(),
        ]
    }

    /// Plays the issuing authority's heartbeat in the quick start: appends a `heartbeat`
    /// event to the development feed every `every`, so the gateway does not go stale
    /// while nothing else is published.
    pub async fn heartbeats(
        feed: PathBuf,
        key: Option<FeedKey>,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let at = crate::unix_now() as i64;
            // A failed append shows as a stale feed, which is what it is.
            let _ = Publisher::File(feed.clone())
                .heartbeat(&Writer::new(key.as_ref()), at)
                .await;
        }
    }

    /// The API key of the development caller.
    pub fn read_api_key(&self) -> Result<String, IssueError> {
        keys::read_api_key(&self.api_key())
    }
}

fn write(path: &Path, text: &str) -> Result<(), IssueError> {
    owner_only::write(path, format!("{text}\n").as_bytes()).map_err(|e| IssueError::file(path, e))
}

/// The hex SHA-256 of an API key, as `callers.json` holds it.
fn sha256_hex(key: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

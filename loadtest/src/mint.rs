//! Minting the run's codes up front, on every core: each thread has its own minter (its
//! own copy of the issuer key, its own seed), so the codes are the same for a seed
//! whatever the number of threads.

use std::sync::Arc;

use gateway_core::pseudonym::PseudonymKey;
use gateway_core::Policy;
use gateway_issuer::mint::{Issuer, SigningKey};

use crate::error::Error;
use crate::mix::{Item, Kind, Minter, Mix};

/// What every minting thread shares.
pub struct Minting<'a> {
    pub mix: &'a Mix,
    pub policy: Arc<Policy>,
    /// The shadow policy, for the `shadow` kind.
    pub shadow: Option<Arc<Policy>>,
    pub venues: &'a [String],
    pub seed: u64,
    pub now: u64,
}

/// Mints `count` items of the mix and `churn` green ones, on every core.
pub fn mint_all(
    issuer: Issuer,
    pseudonyms: Option<PseudonymKey>,
    m: &Minting<'_>,
    count: usize,
    churn: usize,
) -> Result<(Vec<Item>, Vec<Item>), Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per = count.div_ceil(threads);
    let secret = issuer.key.secret_bytes();
    let alg = issuer.key.alg();
    let minter = |seed: u64| -> Result<Minter, Error> {
        let key = match alg {
            gateway_core::cose::Alg::EdDsa => {
                let b: [u8; 32] = secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Usage("the issuer key is not an Ed25519 seed"))?;
                SigningKey::ed25519(&b)
            }
            gateway_core::cose::Alg::Es256 => SigningKey::es256(&secret)?,
        };
        let issuer = Issuer {
            kid: issuer.kid.clone(),
            issuer: issuer.issuer.clone(),
            key,
        };
        Minter::new(
            issuer,
            pseudonyms.clone(),
            m.mix,
            m.policy.clone(),
            m.shadow.as_deref(),
            m.venues,
            seed,
            m.now,
        )
    };
    let parts: Vec<Result<Vec<Item>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let minter = &minter;
                s.spawn(move || {
                    let mut mt = minter(m.seed.wrapping_add(t as u64))?;
                    let n = per.min(count.saturating_sub(t * per));
                    (0..n).map(|_| mt.next_item()).collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Usage("a minting thread failed")))
            })
            .collect()
    });
    let mut items = Vec::with_capacity(count);
    for p in parts {
        items.extend(p?);
    }
    let mut mt = minter(m.seed ^ 0xC4_0000)?;
    let churn = (0..churn)
        .map(|_| mt.make(Kind::Green))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, churn))
}

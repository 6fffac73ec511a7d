//! Obtaining the client by dynamic registration at start-up: where a kept
//! client is looked for, and how replicas agree on one.
//!
//! The client is looked for first where registrations are kept (a file, or
//! the shared cache so every replica uses one client); only when none fits
//! (same issuer, same redirect URIs, secret not expired) is a new one
//! registered, and then kept. With the shared cache, a replica registers
//! only after writing the "registering" mark with `SET NX`; the others wait
//! for its registration to appear, so replicas starting together register
//! once. The shared record is tagged with the session keys, like every
//! shared value that decides access. Any failure stops start-up.

use std::time::Duration;

use super::rescue::Error;
use crate::cache::{CacheKey, Caches, DEFAULT_CLIENT_REGISTRATION_TTL, Namespace};
use crate::clock::SharedClock;
use crate::oidc::{
    self, ProviderSettings, RegisteredClient, RegistrationSettings, RegistrationStore,
};
use crate::session::{SessionCodec, SessionSettings};

/// Lifetime of the mark a replica writes while it registers: longer than a
/// registration takes, short enough that the mark of a replica that died
/// mid-registration frees itself.
pub const REGISTRATION_MARK_TTL: Duration = Duration::from_secs(60);
/// How long a replica waits for another replica's registration to appear.
pub const REGISTRATION_WAIT: Duration = Duration::from_secs(75);
/// How often a waiting replica looks for that registration.
pub const REGISTRATION_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Gives `provider` a client when it has none and registration is
/// configured: the kept registration, or a new one. Does nothing when a
/// client id is configured.
pub async fn ensure_client(
    provider: &mut ProviderSettings,
    session: &SessionSettings,
    caches: &Caches,
    clock: &SharedClock,
) -> Result<(), Error> {
    let Some(reg) = oidc::pending_registration(provider).cloned() else {
        return Ok(());
    };
    let keys = SessionCodec::new(session.clone())?.cache_integrity_keys();
    let caches = caches.clone().with_integrity_keys(keys);
    let client = obtain(provider, &reg, &caches, clock).await?;
    tracing::info!(
        issuer = %provider.issuer,
        client_id = %client.client_id,
        "using the dynamically registered client"
    );
    client.apply_to(provider);
    Ok(())
}

async fn obtain(
    provider: &ProviderSettings,
    reg: &RegistrationSettings,
    caches: &Caches,
    clock: &SharedClock,
) -> Result<RegisteredClient, Error> {
    let uris = oidc::redirect_uris_of(&reg.metadata);
    let now = clock.now();
    let issuer = provider.issuer.as_str();
    match &reg.store {
        RegistrationStore::None => Ok(oidc::register_client(provider, reg).await?),
        RegistrationStore::File(path) => {
            if let Some(c) =
                oidc::read_registration_file(path)?.filter(|c| c.fits(issuer, &uris, now))
            {
                return Ok(c);
            }
            let c = oidc::register_client(provider, reg).await?;
            oidc::write_registration_file(path, &c)?;
            Ok(c)
        }
        RegistrationStore::Shared => {
            let key = CacheKey::hashed(&format!("client:{issuer}"));
            let mark = CacheKey::hashed(&format!("registering:{issuer}"));
            let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
            loop {
                if let Some(c) = read_shared(caches, &key)
                    .await?
                    .filter(|c| c.fits(issuer, &uris, now))
                {
                    // Renew the record's lifetime: a client in use stays.
                    write_shared(caches, &key, &c).await?;
                    return Ok(c);
                }
                if caches
                    .set_if_absent(
                        Namespace::ClientRegistration,
                        &mark,
                        &1u8,
                        REGISTRATION_MARK_TTL,
                    )
                    .await
                    .map_err(shared_error)?
                {
                    let r = async {
                        // Another replica may have registered, kept its
                        // client and freed the mark between the read above
                        // and this mark: look again before registering.
                        if let Some(c) = read_shared(caches, &key)
                            .await?
                            .filter(|c| c.fits(issuer, &uris, now))
                        {
                            return Ok(c);
                        }
                        let c = oidc::register_client(provider, reg).await?;
                        write_shared(caches, &key, &c).await?;
                        Ok(c)
                    }
                    .await;
                    let _ = caches.delete(Namespace::ClientRegistration, &mark).await;
                    return r;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(oidc::Error::ProviderUnavailable(format!(
                        "another replica is registering the client but no registration \
                         appeared within {} s",
                        REGISTRATION_WAIT.as_secs()
                    ))
                    .into());
                }
                tracing::info!("another replica is registering the client; waiting for it");
                tokio::time::sleep(REGISTRATION_POLL_INTERVAL).await;
            }
        }
    }
}

fn shared_error(e: crate::cache::Error) -> Error {
    Error::SessionStore(format!("shared cache for the client registration: {e}"))
}

async fn read_shared(caches: &Caches, key: &CacheKey) -> Result<Option<RegisteredClient>, Error> {
    caches
        .get(Namespace::ClientRegistration, key)
        .await
        .map_err(shared_error)
}

async fn write_shared(caches: &Caches, key: &CacheKey, c: &RegisteredClient) -> Result<(), Error> {
    caches
        .set(
            Namespace::ClientRegistration,
            key,
            c,
            DEFAULT_CLIENT_REGISTRATION_TTL,
        )
        .await
        .map_err(shared_error)
}

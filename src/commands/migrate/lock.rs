//! The migration locks: session-level advisory locks on the one connection that applies, taken
//! with pg_try_advisory_lock and polled with the runtime's backoff (never a blocking
//! pg_advisory_lock, whose waiters queue behind and deadlock against CREATE INDEX
//! CONCURRENTLY), reporting who holds one meanwhile. initbox's own key, plus the key of the tool
//! whose ledger it writes, so that a pod still running that tool never applies at the same time.

use std::time::Duration;

use anyhow::anyhow;
use tokio_postgres::Client;

use crate::commands::migrate::checksum::sha256_hex;
use crate::probe::pg;
use crate::runtime::ctx::Ctx;
use crate::runtime::retry::{self, AttemptError};

/// An advisory lock key derived from the ledger's name, so that two ledgers in one database
/// (two apps) do not wait for each other.
pub fn key(ledger_name: &str) -> i64 {
    let hex = sha256_hex(format!("initbox-migrate:{ledger_name}").as_bytes());
    u64::from_str_radix(&hex[..16], 16).expect("hex digits") as i64
}

/// A lock to take, and whose it is, for messages.
pub struct Key {
    pub key: i64,
    pub whose: String,
}

/// Waits until every key is held at once, until `limit` (or the deadline, if sooner). Keys are
/// tried in order and all released again when one is taken, so a runner never sits on one key
/// while waiting for another.
pub async fn acquire(
    ctx: &Ctx,
    client: &Client,
    keys: &[Key],
    limit: Duration,
) -> anyhow::Result<()> {
    retry::until_ready_within(ctx, "migration lock", Some(limit), |_| async move {
        for key in keys {
            let taken = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key.key])
                .await
                .map_err(|error| AttemptError::transient(anyhow!(pg::describe(&error))))?
                .get::<_, bool>(0);
            if !taken {
                release(client).await;
                let holder = holder(client, key.key).await;
                return Err(AttemptError::transient(anyhow!("{} {holder}", key.whose)));
            }
        }
        Ok(())
    })
    .await
}

/// Releases every advisory lock of the session: the run holds none but these, and an attempt
/// cut short by its timeout may have taken a key twice (session locks count), which unlocking
/// key by key would leave held.
pub async fn release(client: &Client) {
    // Closing the session releases them too; this only makes it prompt.
    let _ = client
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await;
}

/// "held by initbox-migrate@web-7d9 (pid 4242, connected 12s ago)", from pg_locks and
/// pg_stat_activity. A bigint advisory key shows there as classid (high half), objid (low half).
async fn holder(client: &Client, key: i64) -> String {
    let sql = "SELECT coalesce(nullif(a.application_name, ''), '(no application_name)'), a.pid,
                      extract(epoch FROM now() - a.backend_start)::bigint
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                 AND l.classid::bigint = $1 AND l.objid::bigint = $2";
    let high = (key as u64 >> 32) as i64;
    let low = (key as u64 & 0xffff_ffff) as i64;
    match client.query_opt(sql, &[&high, &low]).await {
        // Another role's session shows NULL for most columns unless this one may read all stats.
        Ok(Some(row)) => {
            let name: Option<String> = row.try_get(0).ok().flatten();
            let pid: i32 = row.try_get(1).unwrap_or_default();
            let age: Option<i64> = row.try_get(2).ok().flatten();
            let age = age.map_or_else(String::new, |seconds| format!(", connected {seconds}s ago"));
            format!(
                "held by {} (pid {pid}{age})",
                name.unwrap_or_else(|| "another role's session".into())
            )
        }
        // Released between the two queries, or pg_stat_activity is not readable.
        _ => "held by another session".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_differ_per_ledger() {
        assert_eq!(
            key("public.initbox_migrations"),
            key("public.initbox_migrations")
        );
        assert_ne!(
            key("public.initbox_migrations"),
            key("other.initbox_migrations")
        );
    }
}

//! Key pools' stored part: each account's pool settings (weight, requests
//! and tokens per minute, monthly budget; schema v11) and the month's spend
//! per account, which the router loads when a month starts.

use super::pg::catalog as pgc;
use super::{Store, StoreResult};
use crate::domain::keypool::PoolSettings;
use crate::domain::{AccountId, Micros};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;

impl Store {
    /// Every account's pool settings that are set.
    pub fn pool_settings(&self) -> StoreResult<HashMap<AccountId, PoolSettings>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgc::pool_settings(&pg).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT account_id, weight, rpm, tpm, monthly_budget_micros FROM account_pool_settings")?;
            let rows = st.query_map([], |r| {
                Ok((
                    AccountId(r.get(0)?),
                    PoolSettings {
                        weight: r.get::<_, Option<i64>>(1)?.map(|v| v.clamp(1, u32::MAX as i64) as u32),
                        rpm: r.get::<_, Option<i64>>(2)?.map(|v| v.clamp(1, u32::MAX as i64) as u32),
                        tpm: r.get::<_, Option<i64>>(3)?.map(|v| v.max(1) as u64),
                        monthly_budget: r.get::<_, Option<i64>>(4)?.map(Micros),
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// One account's pool settings (all `None` when never set).
    pub fn account_pool_settings(&self, account: AccountId) -> StoreResult<PoolSettings> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgc::account_pool_settings(&pg, account).await });
        }
        Ok(self.pool_settings_of(account)?.unwrap_or_default())
    }

    fn pool_settings_of(&self, account: AccountId) -> StoreResult<Option<PoolSettings>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT weight, rpm, tpm, monthly_budget_micros FROM account_pool_settings WHERE account_id = ?1",
                [account.0],
                |r| {
                    Ok(PoolSettings {
                        weight: r.get::<_, Option<i64>>(0)?.map(|v| v.clamp(1, u32::MAX as i64) as u32),
                        rpm: r.get::<_, Option<i64>>(1)?.map(|v| v.clamp(1, u32::MAX as i64) as u32),
                        tpm: r.get::<_, Option<i64>>(2)?.map(|v| v.max(1) as u64),
                        monthly_budget: r.get::<_, Option<i64>>(3)?.map(Micros),
                    })
                },
            )
            .optional()
        })
    }

    /// Sets an account's pool settings (all `None`: removes them). The
    /// account must exist; values out of range are refused by the schema.
    pub fn set_account_pool_settings(&self, account: AccountId, s: &PoolSettings) -> StoreResult<()> {
        self.account(account)?;
        if let Some(pg) = self.postgres() {
            let s = *s;
            return pg.block(move |pg| async move { pgc::set_account_pool_settings(&pg, account, s).await });
        }
        self.with_conn(|c| {
            if s.is_default() {
                c.execute("DELETE FROM account_pool_settings WHERE account_id = ?1", [account.0])?;
            } else {
                c.execute(
                    "INSERT INTO account_pool_settings (account_id, weight, rpm, tpm, monthly_budget_micros) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (account_id) DO UPDATE SET weight = ?2, rpm = ?3, tpm = ?4, monthly_budget_micros = ?5",
                    params![
                        account.0,
                        s.weight.map(i64::from),
                        s.rpm.map(i64::from),
                        s.tpm.map(|v| v.min(i64::MAX as u64) as i64),
                        s.monthly_budget.map(|m| m.0)
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// What an account cost in `[from, to)` (every usage row against it).
    pub fn account_spend(&self, account: AccountId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Micros> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::account_spend(&pg, account, from, to).await })?);
        }
        self.with_conn(|c| {
            c.query_row(
                "SELECT coalesce(sum(cost_micros), 0) FROM usage_events WHERE account_id = ?1 AND ts >= ?2 AND ts < ?3",
                params![account.0, from.timestamp_millis(), to.timestamp_millis()],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(Micros)
    }
}

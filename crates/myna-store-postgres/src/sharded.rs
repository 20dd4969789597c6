//! The provider on several PostgreSQL nodes: PostgreSQL's own hash partitioning, with each
//! partition of a person-keyed table a `postgres_fdw` foreign table on one data node (a
//! shard). The coordinator holds the partition map (in its catalog: which remainder of
//! `hash(person id) mod n` lives on which server) and the small tables (card serials,
//! revocations, masters, organisations, import batches); the shards hold the persons, their
//! records and their chains of the access log.
//!
//! The store's SQL does not change: `PgProviderStore` connects to the coordinator. An access
//! names one person, so every person-keyed statement is pruned to one partition (at run time
//! for the provider's generic plans) and the access runs on one shard: the records read and
//! the log entry written stay in that shard's one remote transaction, which postgres_fdw
//! commits with the coordinator's (docs/deployment-postgres-fdw.md). A load or an import
//! batch spans the shards, so it is written on them directly and committed on all or none
//! (`two_phase`).

use crate::{PgProviderStore, connection, db_err};
use myna_store::StoreError;

/// The person-keyed tables and the column each is split by: the person, their records, and
/// their chain of the access log.
pub const PERSON_KEYED: [(&str, &str); 7] = [
    ("person", "id"),
    ("visit", "person_id"),
    ("dispensing", "person_id"),
    ("procedure_record", "person_id"),
    ("dialysis", "person_id"),
    ("health_check", "person_id"),
    ("access_log", "person_id"),
];

/// `person_slice(id, modulus)`: the remainder PostgreSQL's hash partitioning gives a bigint
/// key, computed on a data node, which has no partitioned table to ask. The partition hash of
/// one key is `hashint8extended(id, HASH_PARTITION_SEED)` combined into 0 (`hash_combine64`,
/// which adds 0x49a0f4dd15e5a8e3), read as unsigned and taken mod the modulus
/// (`compute_partition_hash_value` in PostgreSQL's partbounds.c). `tests/sharded.rs` checks it
/// against `satisfies_hash_partition` on the coordinator.
const PERSON_SLICE: &str = "CREATE OR REPLACE FUNCTION person_slice(id bigint, modulus int) \
     RETURNS int LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ \
     SELECT mod(mod(hashint8extended(id, 8816678312871386365)::numeric \
     + 18446744073709551616 + 5305509591434766563, 18446744073709551616), modulus)::int $$;\n";

/// One data node as the coordinator's catalog names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The remainder of `hash(person id) mod modulus` this node holds.
    pub remainder: i32,
    pub modulus: i32,
    /// The foreign server's name on the coordinator.
    pub server: String,
    /// Where it is: `host:port/dbname`.
    pub address: String,
}

/// Makes the empty provider database at `coordinator` the coordinator of `shards` (each an
/// empty database, `postgres://…`): each shard gets the provider's schema, and each
/// person-keyed table on the coordinator becomes a table partitioned by hash whose partitions
/// are the shards' tables. Run once, before any data; the result is kept in the coordinator's
/// catalog, so every later `PgProviderStore::connect(coordinator)` uses the shards.
pub async fn shard_provider(
    coordinator: &str,
    shards: &[String],
) -> Result<Vec<Shard>, StoreError> {
    let modulus = i32::try_from(shards.len())
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| invalid("between 1 and 64 shards are needed"))?;
    // Each node once, and none the coordinator itself (its foreign tables would point back
    // at it).
    let mut places = std::collections::HashSet::from([place(coordinator)?]);
    for (i, url) in shards.iter().enumerate() {
        if !places.insert(place(url)?) {
            return Err(invalid(format!(
                "node {i} is the coordinator or another node given again"
            )));
        }
    }
    // The same, as each database names itself: one URL may be spelled two ways (a host name
    // and its address).
    let mut databases = std::collections::HashSet::from([database_identity(coordinator).await?]);
    for (i, url) in shards.iter().enumerate() {
        if !databases.insert(database_identity(url).await?) {
            return Err(invalid(format!(
                "node {i} is the coordinator or another node under another name"
            )));
        }
    }
    let mut servers = Vec::new();
    for (i, url) in shards.iter().enumerate() {
        // Each shard is a provider database of its own: its tables carry every key and index.
        let node = PgProviderStore::connect(url).await?;
        let client = connection(&node.pool).await?;
        if let Some(table) = first_held(&client).await? {
            return Err(invalid(format!(
                "node {i} already holds rows in {table}: give empty databases"
            )));
        }
        // A write that spans nodes is prepared on each (`two_phase`).
        let prepared: String = client
            .query_one("SHOW max_prepared_transactions", &[])
            .await
            .map_err(db_err)?
            .try_get(0)
            .map_err(db_err)?;
        if prepared.trim() == "0" {
            return Err(invalid(format!(
                "node {i} has max_prepared_transactions = 0: set it (for example to 64) and \
                 restart that server, so that loads can be committed on every node or none"
            )));
        }
        // The node refuses any row of a person whose hash is not its own remainder.
        // Quiet: the constraints are new on an empty node ("does not exist, skipping").
        let mut slice = String::from("SET client_min_messages = warning;\n");
        slice.push_str(PERSON_SLICE);
        for (table, column) in PERSON_KEYED {
            slice.push_str(&format!(
                "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_person_slice;\n\
                 ALTER TABLE {table} ADD CONSTRAINT {table}_person_slice \
                 CHECK (person_slice({column}, {modulus}) = {i});\n"
            ));
        }
        client.batch_execute(&slice).await.map_err(db_err)?;
        servers.push(server_options(url).map_err(|e| invalid(format!("shard {i}: {e}")))?);
    }
    let store = PgProviderStore::connect(coordinator).await?;
    let mut client = connection(&store.pool).await?;
    let tx = client.transaction().await.map_err(db_err)?;
    if !layout_in(&tx).await?.is_empty() {
        return Err(invalid("this database is already a coordinator of shards"));
    }
    if let Some(table) = first_held(&tx).await? {
        return Err(invalid(format!(
            "the coordinator already holds rows in {table}: shard a new, empty database"
        )));
    }
    let mut ddl = String::from("CREATE EXTENSION IF NOT EXISTS postgres_fdw;\n");
    for (i, (options, user)) in servers.iter().enumerate() {
        ddl.push_str(&format!(
            "CREATE SERVER myna_shard_{i} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({options});\n\
             CREATE USER MAPPING FOR CURRENT_USER SERVER myna_shard_{i} OPTIONS ({user});\n"
        ));
    }
    for (table, column) in PERSON_KEYED {
        ddl.push_str(&format!(
            "ALTER TABLE {table} RENAME TO {table}_unsharded;\n\
             CREATE TABLE {table} (LIKE {table}_unsharded INCLUDING DEFAULTS) \
             PARTITION BY HASH ({column});\n\
             DROP TABLE {table}_unsharded;\n"
        ));
        // The access path reads one person's chain newest first and stops at one row; the
        // LIMIT does not reach a partition, so the node sends rows in batches of this size.
        let fetch = if table == "access_log" { 16 } else { 1000 };
        for i in 0..modulus {
            ddl.push_str(&format!(
                "CREATE FOREIGN TABLE {table}_shard{i} PARTITION OF {table} \
                 FOR VALUES WITH (MODULUS {modulus}, REMAINDER {i}) SERVER myna_shard_{i} \
                 OPTIONS (schema_name 'public', table_name '{table}', fetch_size '{fetch}');\n"
            ));
        }
    }
    tx.batch_execute(&ddl).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    layout(coordinator).await
}

/// A database as its server names it: the cluster's system identifier (unique to each
/// `initdb`; a copied data directory keeps it, so two such copies are refused as one) and the
/// database's name. PostgreSQL 15 lets any role read it; a service that revokes
/// `pg_control_system()` makes `shard` stop with that error.
async fn database_identity(url: &str) -> Result<(i64, String), StoreError> {
    let pool = crate::pool(url)?;
    let client = connection(&pool).await?;
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), current_database()",
            &[],
        )
        .await
        .map_err(db_err)?;
    Ok((
        row.try_get(0).map_err(db_err)?,
        row.try_get(1).map_err(db_err)?,
    ))
}

/// Whether the database behind `pool` is a coordinator: its `person` is partitioned.
pub(crate) async fn is_coordinator(pool: &deadpool_postgres::Pool) -> Result<bool, StoreError> {
    let client = connection(pool).await?;
    let row = client
        .query_one(IS_PARTITIONED, &[&"person"])
        .await
        .map_err(db_err)?;
    row.try_get(0).map_err(db_err)
}

/// Whether the table named `$1` is partitioned (false when there is no such table).
pub(crate) const IS_PARTITIONED: &str = "SELECT coalesce((SELECT relkind = 'p' FROM pg_class \
     WHERE oid = to_regclass($1)), false)";

/// The first person-keyed table that holds a row, if any.
pub(crate) async fn first_held(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Option<&'static str>, StoreError> {
    for (table, _) in PERSON_KEYED {
        let held = client
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .map_err(db_err)?;
        if held.try_get::<_, bool>(0).map_err(db_err)? {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// The shards of the provider database at `url`, by remainder; empty when it is one node.
pub async fn layout(url: &str) -> Result<Vec<Shard>, StoreError> {
    let pool = crate::pool(url)?;
    let mut client = connection(&pool).await?;
    let tx = client.transaction().await.map_err(db_err)?;
    layout_in(&tx).await
}

async fn layout_in(tx: &deadpool_postgres::Transaction<'_>) -> Result<Vec<Shard>, StoreError> {
    partitions_of(tx, "person").await
}

/// The foreign partitions of `table`, their bounds and their servers, from the catalog, by
/// remainder.
async fn partitions_of(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<Vec<Shard>, StoreError> {
    let rows = tx
        .query(
            "SELECT pg_get_expr(c.relpartbound, c.oid), s.srvname, \
                    array_to_string(s.srvoptions, ' ') \
             FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_foreign_table f ON f.ftrelid = c.oid \
             JOIN pg_foreign_server s ON s.oid = f.ftserver \
             WHERE i.inhparent = to_regclass($1)",
            &[&table],
        )
        .await
        .map_err(db_err)?;
    let mut shards = Vec::new();
    for row in rows {
        let bound: String = row.try_get(0).map_err(db_err)?;
        let server: String = row.try_get(1).map_err(db_err)?;
        let options: String = row.try_get(2).map_err(db_err)?;
        let (modulus, remainder) = hash_bound(&bound)
            .ok_or_else(|| myna_store::columns::corrupt(format!("partition bound {bound:?}")))?;
        let option = |key: &str| {
            options
                .split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        shards.push(Shard {
            remainder,
            modulus,
            server,
            address: format!("{}:{}/{}", option("host"), option("port"), option("dbname")),
        });
    }
    shards.sort_by_key(|s| s.remainder);
    Ok(shards)
}

/// How to reach each data node directly, by remainder: its foreign server's host, port and
/// database, and the user mapping of the role connected. A write that spans nodes goes to them
/// this way (`two_phase`), not through postgres_fdw. Empty when the database is one node.
pub(crate) async fn node_configs(
    pool: &deadpool_postgres::Pool,
) -> Result<Vec<tokio_postgres::Config>, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(db_err)?;
    let shards = layout_in(&tx).await?;
    // Rows are routed by the person's remainder: every person-keyed table must put that
    // remainder on the same server.
    let servers: Vec<&str> = shards.iter().map(|s| s.server.as_str()).collect();
    for (table, _) in PERSON_KEYED {
        let theirs = partitions_of(&tx, table).await?;
        if theirs.iter().map(|s| s.server.as_str()).collect::<Vec<_>>() != servers {
            return Err(myna_store::columns::corrupt(format!(
                "{table} is not split over the same servers as person, remainder by remainder"
            )));
        }
    }
    let mut configs = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        if usize::try_from(shard.remainder).ok() != Some(i)
            || usize::try_from(shard.modulus).ok() != Some(shards.len())
        {
            return Err(myna_store::columns::corrupt(format!(
                "the partition map is not one server per remainder of {}: {} holds {} of {}",
                shards.len(),
                shard.server,
                shard.remainder,
                shard.modulus
            )));
        }
        let options = tx
            .query(
                "SELECT o.option_name, o.option_value FROM pg_foreign_server s, \
                        pg_options_to_table(s.srvoptions) o WHERE s.srvname = $1 \
                 UNION ALL \
                 SELECT o.option_name, o.option_value FROM pg_user_mappings u, \
                        pg_options_to_table(u.umoptions) o \
                 WHERE u.srvname = $1 AND u.usename = current_user",
                &[&shard.server],
            )
            .await
            .map_err(db_err)?;
        let mut config = tokio_postgres::Config::new();
        for row in options {
            let name: String = row.try_get(0).map_err(db_err)?;
            let value: String = row.try_get(1).map_err(db_err)?;
            match name.as_str() {
                "host" => {
                    config.host(&value);
                }
                "port" => {
                    config.port(value.parse().map_err(|_| {
                        myna_store::columns::corrupt(format!("{}: port {value:?}", shard.server))
                    })?);
                }
                "dbname" => {
                    config.dbname(&value);
                }
                "user" => {
                    config.user(&value);
                }
                "password" => {
                    config.password(value);
                }
                _ => {}
            }
        }
        if config.get_user().is_none() {
            return Err(invalid(format!(
                "no user mapping of this role for {}: connect as the role that ran `provider shard`",
                shard.server
            )));
        }
        configs.push(crate::limited(config));
    }
    Ok(configs)
}

/// `FOR VALUES WITH (modulus 3, remainder 1)` → (3, 1).
fn hash_bound(bound: &str) -> Option<(i32, i32)> {
    let inner = bound.strip_prefix("FOR VALUES WITH (")?.strip_suffix(')')?;
    let mut modulus = None;
    let mut remainder = None;
    for part in inner.split(',') {
        match part.trim().split_once(' ')? {
            ("modulus", n) => modulus = n.parse().ok(),
            ("remainder", n) => remainder = n.parse().ok(),
            _ => return None,
        }
    }
    Some((modulus?, remainder?))
}

/// The foreign server's options (host, port, dbname) and the user mapping's (user, password)
/// from a shard's URL, as SQL option lists.
fn server_options(url: &str) -> Result<(String, String), String> {
    let config = crate::config(url).map_err(|e| e.to_string())?;
    let host = match config.get_hosts() {
        [tokio_postgres::config::Host::Tcp(h)] => h.clone(),
        _ => return Err("a shard's URL names one TCP host".into()),
    };
    let port = match config.get_ports() {
        [] => 5432,
        [p] => *p,
        _ => return Err("a shard's URL names one port".into()),
    };
    let dbname = config.get_dbname().unwrap_or("postgres");
    let user = config
        .get_user()
        .ok_or("a shard's URL names its user (postgres://user@host/db)")?;
    let mut mapping = format!("user {}", literal(user));
    if let Some(password) = config.get_password() {
        let password = std::str::from_utf8(password).map_err(|_| "the password is not UTF-8")?;
        mapping.push_str(&format!(", password {}", literal(password)));
    }
    Ok((
        format!(
            "host {}, port '{port}', dbname {}, fetch_size '1000', batch_size '1000'",
            literal(&host),
            literal(dbname)
        ),
        mapping,
    ))
}

/// Where a URL's database is: host, port and database name.
fn place(url: &str) -> Result<String, StoreError> {
    let config = crate::config(url)?;
    Ok(format!(
        "{:?}:{:?}/{}",
        config.get_hosts(),
        config.get_ports(),
        config.get_dbname().unwrap_or("postgres")
    ))
}

/// A SQL string literal (`standard_conforming_strings`, on since PostgreSQL 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Unavailable(format!("sharding: {}", message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_bounds_read_back() {
        assert_eq!(
            hash_bound("FOR VALUES WITH (modulus 3, remainder 1)"),
            Some((3, 1))
        );
        assert_eq!(hash_bound("FOR VALUES FROM (1) TO (2)"), None);
        assert_eq!(hash_bound("FOR VALUES WITH (modulus x, remainder 1)"), None);
    }

    #[test]
    fn server_options_quote_what_the_url_gives() {
        let (server, user) =
            server_options("postgres://my'na:pa'ss@127.0.0.1:54331/t_x").unwrap_or_default();
        assert_eq!(
            server,
            "host '127.0.0.1', port '54331', dbname 't_x', fetch_size '1000', batch_size '1000'"
        );
        assert_eq!(user, "user 'my''na', password 'pa''ss'");
        assert!(server_options("postgres://127.0.0.1/x").is_err());
    }
}

//! For tests: a fresh database per test on the project's own PostgreSQL server, which
//! `scripts/postgres` starts (idempotent; `scripts/test` starts it first). `MYNA_PG_URL` names
//! another server instead. No server is an error, never a skip.

use std::sync::OnceLock;

/// Runs one of the project's scripts (`scripts/NAME ARG`); its stdout, or why it failed.
fn run_script(name: &str, arg: &str) -> Result<String, String> {
    let script = format!("{}/../../scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&script)
        .arg(arg)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {script} {arg}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} {arg} failed"));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// The server's URL (its `postgres` database), starting the server once per process.
pub fn server_url() -> Result<String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("MYNA_PG_URL") {
            return Ok(url);
        }
        run_script("postgres", "start")?;
        run_script("postgres", "url").map(|s| s.trim().to_owned())
    })
    .clone()
}

/// A client on `url`, its connection driven by a task of its own.
async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to {}: {e}", crate::redacted(url)))?;
    tokio::spawn(conn);
    Ok(client)
}

async fn admin() -> Result<tokio_postgres::Client, String> {
    connect(&server_url()?).await
}

/// A database made for one test; `drop_now` removes it.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn create(test: &str) -> Result<TestDb, String> {
        let name = format!(
            "t_{}_{:08x}",
            test.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect::<String>(),
            rand::random::<u32>()
        );
        admin()
            .await?
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| format!("creating {name}: {e}"))?;
        let base = server_url()?;
        let cut = base.rfind('/').ok_or("a database URL ends with /dbname")?;
        Ok(TestDb {
            url: format!("{}/{name}", &base[..cut]),
            name,
        })
    }

    /// The database's size on disk, in bytes.
    pub async fn size(&self) -> Result<i64, String> {
        let row = admin()
            .await?
            .query_one("SELECT pg_database_size($1)", &[&self.name])
            .await
            .map_err(|e| format!("sizing {}: {e}", self.name))?;
        row.try_get(0).map_err(|e| e.to_string())
    }

    /// Runs one statement on this database as its owner (a test's tampering); the rows it
    /// changed.
    pub async fn execute(&self, sql: &str) -> Result<u64, String> {
        let client = connect(&self.url).await?;
        client
            .execute(sql, &[])
            .await
            .map_err(|e| format!("on {}: {e}", self.name))
    }

    /// How many connections LISTEN on this database (the ems change feeds).
    pub async fn listeners(&self) -> Result<i64, String> {
        let row = admin()
            .await?
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'",
                &[&self.name],
            )
            .await
            .map_err(|e| format!("counting the listeners on {}: {e}", self.name))?;
        row.try_get(0).map_err(|e| e.to_string())
    }

    /// Ends the connections that LISTEN on this database (the ems change feeds), as a network
    /// failure between ems and its database would; how many were ended.
    pub async fn cut_listeners(&self) -> Result<i64, String> {
        let row = admin()
            .await?
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND query LIKE 'LISTEN %'",
                &[&self.name],
            )
            .await
            .map_err(|e| format!("ending the listeners on {}: {e}", self.name))?;
        row.try_get(0).map_err(|e| e.to_string())
    }

    /// Drops the database, closing whatever connections are left on it.
    pub async fn drop_now(self) -> Result<(), String> {
        admin()
            .await?
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(|e| format!("dropping {}: {e}", self.name))
    }
}

/// The data nodes' server URLs, starting them (and the coordinator) once per process
/// (`scripts/postgres-shards`).
pub fn shard_server_urls() -> Result<Vec<String>, String> {
    static URLS: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    URLS.get_or_init(|| {
        run_script("postgres-shards", "start")?;
        let urls: Vec<String> = run_script("postgres-shards", "urls")?
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if urls.is_empty() {
            return Err("scripts/postgres-shards urls named no server".into());
        }
        Ok(urls)
    })
    .clone()
}

/// A provider made for one test on the several-node deployment: a coordinator database on the
/// project's server and one database of the same name on each data node, sharded
/// (`sharded::shard_provider`). `url` is the coordinator's.
pub struct ShardedTestDb {
    pub url: String,
    pub shard_urls: Vec<String>,
    name: String,
}

impl ShardedTestDb {
    pub async fn create(test: &str) -> Result<ShardedTestDb, String> {
        let coordinator = TestDb::create(test).await?;
        let name = coordinator.name.clone();
        let mut shard_urls = Vec::new();
        for server in shard_server_urls()? {
            let client = connect(&server).await?;
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .map_err(|e| format!("creating {name} on {}: {e}", crate::redacted(&server)))?;
            let cut = server
                .rfind('/')
                .ok_or("a database URL ends with /dbname")?;
            shard_urls.push(format!("{}/{name}", &server[..cut]));
        }
        crate::sharded::shard_provider(&coordinator.url, &shard_urls)
            .await
            .map_err(|e| format!("sharding {name}: {e}"))?;
        Ok(ShardedTestDb {
            url: coordinator.url,
            shard_urls,
            name,
        })
    }

    /// The bytes on disk of the coordinator's database and every data node's.
    pub async fn size(&self) -> Result<i64, String> {
        let mut total = 0;
        for url in std::iter::once(&self.url).chain(&self.shard_urls) {
            let client = connect(url).await?;
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(|e| format!("sizing {}: {e}", crate::redacted(url)))?;
            total += row.try_get::<_, i64>(0).map_err(|e| e.to_string())?;
        }
        Ok(total)
    }

    /// Drops the coordinator's database, then each shard's.
    pub async fn drop_now(self) -> Result<(), String> {
        TestDb {
            url: self.url,
            name: self.name.clone(),
        }
        .drop_now()
        .await?;
        for (server, url) in shard_server_urls()?.iter().zip(&self.shard_urls) {
            // A database with prepared transactions (a test's crash) cannot be dropped.
            if let Ok(node) = connect(url).await {
                let gids = node
                    .query(
                        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                        &[],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                for row in gids {
                    let gid: String = row.try_get(0).map_err(|e| e.to_string())?;
                    node.batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
                        .await
                        .map_err(|e| format!("rolling back {gid}: {e}"))?;
                }
            }
            let client = connect(server).await?;
            client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .await
                .map_err(|e| {
                    format!("dropping {} on {}: {e}", self.name, crate::redacted(server))
                })?;
        }
        Ok(())
    }
}

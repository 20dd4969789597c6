//! For tests: a fresh database per test on the project's own PostgreSQL server, which
//! `scripts/postgres` starts (idempotent; `scripts/test` starts it first). `MYNA_PG_URL` names
//! another server instead. No server is an error, never a skip.

use std::sync::OnceLock;

/// The server's URL (its `postgres` database), starting the server once per process.
pub fn server_url() -> Result<String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("MYNA_PG_URL") {
            return Ok(url);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres");
        let started = std::process::Command::new(script)
            .arg("start")
            .status()
            .map_err(|e| format!("running {script} start: {e}"))?;
        if !started.success() {
            return Err(format!("{script} start failed"));
        }
        let out = std::process::Command::new(script)
            .arg("url")
            .output()
            .map_err(|e| format!("running {script} url: {e}"))?;
        String::from_utf8(out.stdout)
            .map(|s| s.trim().to_owned())
            .map_err(|e| e.to_string())
    })
    .clone()
}

async fn admin() -> Result<tokio_postgres::Client, String> {
    let url = server_url()?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to {}: {e}", crate::redacted(&url)))?;
    tokio::spawn(conn);
    Ok(client)
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

//! A fresh database per test on the project's own PostgreSQL server, which `scripts/postgres`
//! starts (it is idempotent; `scripts/test` starts it first). `MYNA_PG_URL` names another
//! server instead. No server is a failure, never a skip.

use std::sync::OnceLock;

/// The server's URL (its `postgres` database), starting the server once per test binary.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("MYNA_PG_URL") {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres");
        let started = std::process::Command::new(script)
            .arg("start")
            .status()
            .unwrap_or_else(|e| panic!("running {script} start: {e}"));
        assert!(started.success(), "{script} start failed");
        let out = std::process::Command::new(script)
            .arg("url")
            .output()
            .unwrap_or_else(|e| panic!("running {script} url: {e}"));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// A database made for one test and dropped after it.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn create(test: &str) -> TestDb {
        let name = format!(
            "t_{}_{:08x}",
            test.chars().take(40).collect::<String>(),
            rand_suffix()
        );
        let (client, conn) = tokio_postgres::connect(server_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", server_url()));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let base = server_url();
        let cut = base.rfind('/').expect("a database URL ends with /dbname");
        TestDb {
            url: format!("{}/{name}", &base[..cut]),
            name,
        }
    }

    /// Drops the database, closing whatever connections the store left.
    pub async fn drop_now(self) {
        let (client, conn) = tokio_postgres::connect(server_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

//! A future dropped while its `BEGIN` is in flight (a client that hangs up, a
//! timeout, a worker stopping) must not hand the next borrower of that pooled
//! connection a transaction nobody will commit: its writes would hold their
//! locks and vanish. sqlx-postgres 0.9.0 did exactly that (sqlx issue
//! #4393); `vendor/sqlx-postgres` carries the fix until a release has it.

use std::{path::PathBuf, sync::Arc, time::Duration};

use sqlx::{postgres::PgConnectOptions, Acquire as _};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
    sync::watch,
};

use crate::helpers::*;

#[tokio::test]
async fn a_begin_cancelled_in_flight_leaves_no_transaction_for_the_next_borrower() {
    // Arrange: a one-connection pool through a proxy that can hold the
    // server's answers back.
    let db = TestDb::new().await;
    let proxy = HoldingProxy::start(&db.options).await;
    let pool = relevo::db::pool(proxy.options(&db.options), 1).await.unwrap();
    sqlx::query("create table pool_probe (n int)").execute(&db.pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();

    // Act: BEGIN reaches the server, its answer is held, the caller gives up.
    proxy.hold(true);
    let begun = tokio::time::timeout(Duration::from_millis(300), conn.begin()).await.is_ok();
    assert!(!begun, "the begin should still be waiting for its answer");
    wait_for("the server to open the cancelled transaction", Duration::from_secs(10), || async {
        let open: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() and state = 'idle in transaction'",
        )
        .fetch_one(&db.pool)
        .await
        .ok()?;
        (open == 1).then_some(())
    })
    .await;
    proxy.hold(false);
    drop(conn);

    // Assert: the next borrower of the one connection writes outside any
    // transaction: another connection sees the row at once.
    sqlx::query("insert into pool_probe values (1)").execute(&pool).await.unwrap();
    let seen: i64 = sqlx::query_scalar("select count(*) from pool_probe").fetch_one(&db.pool).await.unwrap();
    assert_eq!(seen, 1, "the write ran inside the cancelled transaction and was never committed");
    let open: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "a transaction was left open");
}

/// Forwards a Unix socket to the test cluster's; `hold(true)` stops passing
/// the server's bytes to the client until `hold(false)`.
struct HoldingProxy {
    dir: PathBuf,
    held: Arc<watch::Sender<bool>>,
}

impl HoldingProxy {
    async fn start(target: &PgConnectOptions) -> Self {
        let server = target
            .get_socket()
            .expect("the test cluster listens on a socket")
            .join(format!(".s.PGSQL.{}", target.get_port()));
        let dir = std::env::temp_dir().join(format!("relevo-proxy-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(dir.join(format!(".s.PGSQL.{}", target.get_port()))).unwrap();
        let held = Arc::new(watch::Sender::new(false));
        let hold = held.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = UnixStream::connect(&server).await.unwrap();
                let (mut client_read, client_write) = client.into_split();
                let (server_read, mut server_write) = upstream.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                tokio::spawn(pass_answers(server_read, client_write, hold.subscribe()));
            }
        });
        Self { dir, held }
    }

    fn options(&self, target: &PgConnectOptions) -> PgConnectOptions {
        target.clone().socket(&self.dir)
    }

    fn hold(&self, on: bool) {
        self.held.send_replace(on);
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn pass_answers(
    mut from: tokio::net::unix::OwnedReadHalf,
    mut to: tokio::net::unix::OwnedWriteHalf,
    mut held: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if held.wait_for(|h| !*h).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

//! The checked query macros compile against `.sqlx/` (offline). This proves
//! that data still describes the migrated schema: a migration that renames a
//! column or changes a type makes this test fail until `just sqlx-prepare`
//! regenerates `.sqlx/` (and the build then checks the code against it).

use serde_json::Value;
use sqlx::{Executor as _, SqlSafeStr as _};

use crate::helpers::*;

#[tokio::test]
async fn the_committed_query_data_matches_the_migrated_schema() {
    let db = TestDb::new().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".sqlx");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no query data in {}", dir.display());
    let mut conn = db.pool.acquire().await.unwrap();
    for file in files {
        let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let sql = stored["query"].as_str().unwrap().to_owned();
        let described = (&mut *conn)
            .describe(sqlx::AssertSqlSafe(sql.clone()).into_sql_str())
            .await
            .unwrap_or_else(|e| panic!("{}: the schema no longer accepts this query: {e}\n{sql}", file.display()));
        assert_eq!(
            serde_json::to_value(&described).unwrap(),
            stored["describe"],
            "{}: the schema changed under this query; run `just sqlx-prepare`\n{sql}",
            file.display()
        );
    }
}

//! Migrations run against a seeded database of their own, for the migrations that must fail.

use sqlx::MySqlPool;
use taskflow_core::domain::TaskId;

use crate::{create_database, init_logging, services};

/// Migrates a database of its own that holds `seed` first, and returns what the migration said
/// and the tables it left; the database is dropped afterwards. For migrations that must fail.
pub async fn migrate_seeded_database(seed: &str) -> (anyhow::Result<Vec<String>>, Vec<String>) {
    init_logging();
    let base = services::services().await;
    let suffix = TaskId::new().to_string().replace('-', "")[20..].to_owned();
    let database = format!("tf_test_{suffix}");
    let admin = create_database(&base.mysql, &database).await;
    let pool = MySqlPool::connect(&taskflow_provision::db_url(&base.mysql, &database))
        .await
        .expect("connecting to the test database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(seed.to_owned()))
        .execute(&pool)
        .await
        .expect("seeding the test database");
    let result = taskflow_core::db::migrate(&pool).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
    )
    .fetch_all(&pool)
    .await
    .expect("listing the tables");
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`")))
        .execute(&admin)
        .await
        .expect("dropping the test database");
    admin.close().await;
    (result, tables)
}

//! Migrations: refinery's embedded `migrations/`, run over a sqlx connection.

use anyhow::Context as _;
use sqlx::{Connection as _, MySqlConnection, MySqlPool, Row as _};

refinery::embed_migrations!("../../migrations");

/// Applies every migration in `migrations/` that the database has not seen yet. The one
/// function behind `cargo xtask migrate`, `taskflow-api migrate` and the test harness.
pub async fn migrate(pool: &MySqlPool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool
        .acquire()
        .await
        .context("acquiring a connection to migrate")?
        .detach();
    // A migration rewrites whole tables and may take longer than any query should: no statement
    // timeout on this connection, which is closed afterwards rather than returned to the pool.
    super::set_statement_timeout(&mut conn, std::time::Duration::ZERO)
        .await
        .context("lifting the statement timeout to migrate")?;
    let report = migrations::runner()
        .run_async(&mut RefineryConnection(&mut conn))
        .await
        .context("running migrations");
    conn.close()
        .await
        .context("closing the migration connection")?;
    let report = report?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| migration.to_string())
        .collect())
}

/// Lets refinery run its migrations over a sqlx connection, so TaskFlow needs one MySQL driver,
/// not two. Each call runs its statements in one transaction (MySQL commits DDL implicitly, which
/// is why each migration file holds one DDL concern).
struct RefineryConnection<'c>(&'c mut MySqlConnection);

impl refinery_core::traits::r#async::AsyncTransaction for RefineryConnection<'_> {
    type Error = sqlx::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut tx = self.0.begin().await?;
        let mut count = 0;
        for query in queries {
            sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_owned()))
                .execute(&mut *tx)
                .await?;
            count += 1;
        }
        tx.commit().await?;
        Ok(count)
    }
}

impl refinery_core::traits::r#async::AsyncQuery<Vec<refinery_core::Migration>>
    for RefineryConnection<'_>
{
    async fn query(&mut self, query: &str) -> Result<Vec<refinery_core::Migration>, Self::Error> {
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|row| {
                let version: i32 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let applied_on: String = row.try_get(2)?;
                let checksum: String = row.try_get(3)?;
                let applied_on = time::OffsetDateTime::parse(
                    &applied_on,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|err| sqlx::Error::Decode(err.into()))?;
                let checksum = checksum
                    .parse()
                    .map_err(|err: std::num::ParseIntError| sqlx::Error::Decode(err.into()))?;
                Ok(refinery_core::Migration::applied(
                    version, name, applied_on, checksum,
                ))
            })
            .collect()
    }
}

impl refinery_core::AsyncMigrate for RefineryConnection<'_> {}

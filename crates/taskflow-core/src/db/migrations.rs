//! Migrations: refinery's embedded `migrations/`, run over a sqlx connection, and the adoption
//! of a database the Python services' alembic migration created.

use anyhow::Context as _;
use sqlx::{Connection as _, MySqlConnection, MySqlPool, Row as _};

refinery::embed_migrations!("../../migrations");

/// Applies every migration in `migrations/` that the database has not seen yet. The one
/// function behind `cargo xtask migrate`, `taskflow-api migrate` and the test harness.
///
/// A database that has a `tasks` table but no refinery history is a Python deployment being
/// adopted: its table is V1's (the original design's), so V1 is recorded as applied instead of
/// run, and the later migrations, which only add nullable or defaulted columns and new tables,
/// apply as usual. A `tasks` table of another shape stops the migration, naming the difference.
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
    if !has_table(&mut conn, "refinery_schema_history").await?
        && has_table(&mut conn, "tasks").await?
    {
        let columns = tasks_columns(&mut conn).await?;
        let differences = v1_differences(&columns);
        anyhow::ensure!(
            differences.is_empty(),
            "this database already has a `tasks` table, but not the one the Python services \
             create, so it cannot be adopted: {}",
            differences.join("; ")
        );
        migrations::runner()
            .set_target(refinery::Target::FakeVersion(1))
            .run_async(&mut RefineryConnection(&mut conn))
            .await
            .context("recording the existing tasks table as migration V1")?;
        tracing::info!("adopted an existing tasks table: V1 recorded as applied, not run");
    }
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

async fn has_table(conn: &mut MySqlConnection, name: &str) -> anyhow::Result<bool> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .with_context(|| format!("looking for the {name} table"))?;
    Ok(count > 0)
}

/// One column of an existing table: name, type as the server spells it, nullable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    column_type: String,
    nullable: bool,
}

async fn tasks_columns(conn: &mut MySqlConnection) -> anyhow::Result<Vec<Column>> {
    // CAST: information_schema's text columns are binary strings on MySQL 8.
    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR) \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tasks' ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading the existing tasks table's columns")?;
    rows.iter()
        .map(|row| {
            Ok(Column {
                name: row.try_get(0)?,
                column_type: row.try_get::<String, _>(1)?.to_lowercase(),
                nullable: row.try_get::<String, _>(2)? == "YES",
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding the tasks table's columns")
}

/// V1's `tasks` columns: name, the types the servers report for it, nullable. MariaDB reports
/// `JSON` as `longtext`, MySQL as `json`.
const V1_COLUMNS: &[(&str, &[&str], bool)] = &[
    ("id", &["char(36)"], false),
    ("title", &["varchar(255)"], false),
    ("payload", &["json", "longtext"], true),
    (
        "status",
        &["enum('pending','processing','done','failed')"],
        false,
    ),
    ("created_at", &["datetime(6)"], false),
    ("updated_at", &["datetime(6)"], false),
    ("finished_at", &["datetime(6)"], true),
];

/// How `columns` differ from V1's `tasks` table, one sentence each; empty when they do not.
fn v1_differences(columns: &[Column]) -> Vec<String> {
    let mut differences = Vec::new();
    for (name, types, nullable) in V1_COLUMNS {
        let Some(column) = columns.iter().find(|column| column.name == *name) else {
            differences.push(format!("column `{name}` ({}) is missing", types[0]));
            continue;
        };
        if !types.contains(&column.column_type.as_str()) {
            differences.push(format!(
                "column `{name}` is {}, expected {}",
                column.column_type, types[0]
            ));
        }
        if column.nullable != *nullable {
            let null = |n: bool| if n { "NULL" } else { "NOT NULL" };
            differences.push(format!(
                "column `{name}` is {}, expected {}",
                null(column.nullable),
                null(*nullable)
            ));
        }
    }
    for column in columns {
        if !V1_COLUMNS.iter().any(|(name, _, _)| *name == column.name) {
            differences.push(format!(
                "column `{}` ({}) is not in the original design",
                column.name, column.column_type
            ));
        }
    }
    differences
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

#[cfg(test)]
mod tests {
    use super::{Column, V1_COLUMNS, v1_differences};

    fn v1() -> Vec<Column> {
        V1_COLUMNS
            .iter()
            .map(|(name, types, nullable)| Column {
                name: (*name).to_owned(),
                column_type: types[types.len() - 1].to_owned(),
                nullable: *nullable,
            })
            .collect()
    }

    #[test]
    fn the_original_designs_table_has_no_differences() {
        assert!(v1_differences(&v1()).is_empty());
    }

    #[test]
    fn each_difference_from_the_original_design_is_named() {
        let mut columns = v1();
        columns.retain(|column| column.name != "finished_at");
        columns[1].column_type = "varchar(100)".to_owned();
        columns[0].nullable = true;
        columns.push(Column {
            name: "owner".to_owned(),
            column_type: "int".to_owned(),
            nullable: true,
        });
        assert_eq!(
            v1_differences(&columns),
            [
                "column `id` is NULL, expected NOT NULL",
                "column `title` is varchar(100), expected varchar(255)",
                "column `finished_at` (datetime(6)) is missing",
                "column `owner` (int) is not in the original design",
            ]
        );
    }
}

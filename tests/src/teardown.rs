//! Clean-up when a [`TestApp`] is dropped: its components stopped, its database, exchange and
//! queues removed.

use std::time::Duration;

use sqlx::MySqlPool;

use crate::TestApp;

impl Drop for TestApp {
    /// Stops the components and removes the database, exchange and queue, also when the test
    /// failed. Drop cannot await, so the clean-up runs on a runtime of its own.
    fn drop(&mut self) {
        if let Some(stop) = self.api.stop.take() {
            let _ = stop.send(());
        }
        if let Some(worker) = self.worker.as_mut().and_then(|worker| worker.stop.take()) {
            let _ = worker.send(());
        }
        // The components stop on the test's runtime, which keeps running while this thread
        // waits; the clean-up starts once they are done (or after a bound), so none of them
        // re-creates what is being removed.
        let mut components = vec![std::mem::replace(
            &mut self.api.task,
            tokio::spawn(async { Ok(()) }),
        )];
        components.extend(self.worker.take().map(|worker| worker.task));
        let database = self.database.clone();
        let admin_url = self.admin_url.clone();
        let amqp = self.direct.amqp.clone();
        let max_attempts = self.worker_settings.retry.max_attempts;
        let cleanup = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while components.iter().any(|task| !task.is_finished())
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let admin = MySqlPool::connect(&admin_url).await?;
                // The components are stopping on the test's runtime; their transactions end
                // soon. Wait for their locks a while, never forever.
                sqlx::query("SET SESSION lock_wait_timeout = 20")
                    .execute(&admin)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{database}`"
                )))
                .execute(&admin)
                .await?;
                admin.close().await;
                let connection = lapin::Connection::connect(&amqp.url, Default::default()).await?;
                // The work queue, its retry and parking queues and the dead-letter queue.
                let mut queues = vec![
                    amqp.queue.clone(),
                    amqp.dead_letter_queue.clone(),
                    format!("{}.parked", amqp.queue),
                ];
                queues.extend((1..=max_attempts).map(|n| format!("{}.retry.{n}", amqp.queue)));
                taskflow_core::amqp::delete_names(&connection, &queues, &amqp.exchange).await?;
                let _ = connection.close(200, "test done".into()).await;
                anyhow::Ok(())
            })
        });
        // On a multi-threaded runtime, hand this worker thread's queued tasks to the others while
        // waiting, so the stopping components are not stuck behind it.
        let multi_threaded = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let joined = if multi_threaded {
            tokio::task::block_in_place(|| cleanup.join())
        } else {
            cleanup.join()
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("test clean-up failed: {err:#}"),
            Err(_) => eprintln!("test clean-up panicked"),
        }
    }
}

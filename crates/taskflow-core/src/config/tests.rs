use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_point_at_localhost_with_the_spec_names() {
    let settings = Settings::from_vars(&HashMap::new()).unwrap();
    assert_eq!(settings.api.port, 8000);
    assert_eq!(settings.amqp.exchange, "task.topic");
    assert_eq!(settings.amqp.queue, "task.created");
    assert_eq!(settings.redis.channel, "task.status");
    assert_eq!(settings.worker.prefetch, 8);
    assert_eq!(settings.db.connect.attempts, 10);
    assert_eq!(settings.db.connect.backoff, Duration::from_secs(2));
    assert_eq!(settings.api.cors_allow_origins, vec!["*"]);
}

#[test]
fn the_python_deployment_db_url_is_accepted() {
    let settings = Settings::from_vars(&vars(&[(
        "DB_URL",
        "mysql+asyncmy://user:pass@mysql:3306/taskflow",
    )]))
    .unwrap();
    assert_eq!(settings.db.url, "mysql://user:pass@mysql:3306/taskflow");
}

#[test]
fn a_duration_past_thirty_days_is_refused() {
    let err =
        Settings::from_vars(&vars(&[("OUTBOX_GRACE_MS", "18446744073709551615")])).unwrap_err();
    assert_eq!(err.variable, "OUTBOX_GRACE_MS");
    assert!(err.reason.contains("30 days"), "{err}");
    let month = (30 * 24 * 3600 * 1000_u64).to_string();
    Settings::from_vars(&vars(&[("OUTBOX_GRACE_MS", &month)])).unwrap();
}

#[test]
fn max_delay_defaults_to_thirty_days_and_retention_to_forever() {
    let settings = Settings::from_vars(&vars(&[])).unwrap();
    assert_eq!(settings.api.max_delay, Duration::from_secs(30 * 86_400));
    assert_eq!(settings.worker.retention, None);
    let settings =
        Settings::from_vars(&vars(&[("MAX_DELAY", "2h"), ("TASK_RETENTION", "12h")])).unwrap();
    assert_eq!(settings.api.max_delay, Duration::from_secs(7200));
    assert_eq!(
        settings.worker.retention,
        Some(Duration::from_secs(12 * 3600))
    );
}

#[test]
fn a_bad_max_delay_or_task_retention_is_refused_with_its_name() {
    for (name, value) in [
        ("MAX_DELAY", "30"),
        ("TASK_RETENTION", "0d"),
        ("TASK_RETENTION", "a week"),
    ] {
        let err = Settings::from_vars(&vars(&[(name, value)])).unwrap_err();
        assert_eq!(err.variable, name, "{value}: {err}");
    }
}

#[test]
fn a_bad_value_names_its_variable() {
    let err = Settings::from_vars(&vars(&[("WORKER_PREFETCH", "eight")])).unwrap_err();
    assert_eq!(err.variable, "WORKER_PREFETCH");
    let err = Settings::from_vars(&vars(&[("WORKER_PREFETCH", "0")])).unwrap_err();
    assert_eq!(err.variable, "WORKER_PREFETCH");
    let err = Settings::from_vars(&vars(&[("DB_URL", "postgres://x/y")])).unwrap_err();
    assert_eq!(err.variable, "DB_URL");
    let err = Settings::from_vars(&vars(&[("DB_CONNECT_BACKOFF", "-1")])).unwrap_err();
    assert_eq!(err.variable, "DB_CONNECT_BACKOFF");
}

#[test]
fn a_bad_service_url_is_reported_with_its_password_masked() {
    for (name, value) in [
        ("DB_URL", "postgres://app:hunter2@db:5432/x"),
        ("DB_URL", "mysql://app:hun@ter2@db:port/x"),
        ("RABBITMQ_URL", "amqp://app:hunter2@rabbit:notaport/%2f"),
        ("RABBITMQ_URL", "http://app:hunter2@rabbit/"),
        ("REDIS_URL", "redis://:hunter2@[::1"),
        ("REDIS_URL", "tcp://:hunter2@cache:6379"),
    ] {
        let err = Settings::from_vars(&vars(&[(name, value)])).unwrap_err();
        assert_eq!(err.variable, name);
        let shown = err.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("ter2"),
            "{shown}"
        );
        assert!(shown.contains(":***@"), "{shown}");
    }
}

#[test]
fn a_retry_factor_that_is_not_a_positive_number_is_refused() {
    for factor in ["0", "-1", "NaN", "inf", "-inf"] {
        let err = Settings::from_vars(&vars(&[("RETRY_FACTOR", factor)])).unwrap_err();
        assert_eq!(err.variable, "RETRY_FACTOR", "{factor}: {err}");
    }
    Settings::from_vars(&vars(&[("RETRY_FACTOR", "1.5")])).unwrap();
}

#[test]
fn knobs_that_would_stall_or_panic_a_process_are_refused_with_their_name() {
    for (variable, value) in [
        ("WS_PING_INTERVAL_SECONDS", "0"),
        ("OUTBOX_SWEEP_INTERVAL_MS", "0"),
        ("PUBLISH_TIMEOUT_MS", "0"),
        ("DB_ACQUIRE_TIMEOUT_MS", "0"),
        ("TASK_LEASE_SECONDS", "0"),
        ("MAX_BODY_BYTES", "0"),
        ("MAX_BODY_BYTES", "17000000"),
        ("RETRY_BASE_DELAY_MS", "0"),
        ("RETRY_MAX_DELAY_MS", "0"),
        ("WORKER_NAME", &"w".repeat(65)),
        ("DB_STATEMENT_TIMEOUT_MS", "-1"),
        ("WORKER_MAX_REQUEUES", "0"),
    ] {
        let err = Settings::from_vars(&vars(&[(variable, value)]))
            .err()
            .unwrap_or_else(|| panic!("{variable}={value} was accepted"));
        assert_eq!(err.variable, variable, "{err}");
    }
}

#[test]
fn an_invalid_cors_origin_is_a_startup_error() {
    for origin in [
        "dashboard.example",
        "https://dashboard.example/app",
        "https://ok.example, not an origin",
    ] {
        let err = Settings::from_vars(&vars(&[("CORS_ALLOW_ORIGINS", origin)])).unwrap_err();
        assert_eq!(err.variable, "CORS_ALLOW_ORIGINS", "{origin}");
    }
    let settings = Settings::from_vars(&vars(&[(
        "CORS_ALLOW_ORIGINS",
        "https://dashboard.example/, http://localhost:5173",
    )]))
    .unwrap();
    assert_eq!(
        settings.api.cors_allow_origins,
        ["https://dashboard.example", "http://localhost:5173"]
    );
}

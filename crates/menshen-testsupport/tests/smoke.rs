//! The helpers start, answer and stop their servers.

#[test]
fn postgres_starts_answers_stops_and_restarts() {
    let Some(mut pg) = menshen_testsupport::postgres() else {
        return;
    };
    pg.create_database("x");
    assert_eq!(pg.psql("x", "SELECT 1+1").trim(), "2");
    pg.stop();
    assert!(!pg.is_running());
    pg.restart();
    assert_eq!(pg.psql("x", "SELECT 40+2").trim(), "42");
}

#[test]
fn shared_postgres_gives_each_caller_its_own_database() {
    let Some(a) = menshen_testsupport::shared_postgres_db() else {
        return;
    };
    let b = menshen_testsupport::shared_postgres_db().unwrap();
    assert_ne!(a, b);
}

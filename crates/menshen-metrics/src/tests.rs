use super::*;
use std::net::Ipv4Addr;

fn call(app: LabelId, api: LabelId, class: Class, kind: Kind, us: u64) -> Call<'static> {
    Call {
        app,
        api,
        level: Level::A1,
        class,
        kind,
        code: match class {
            Class::Refused => Some("INVALID_SIGNATURE"),
            _ => None,
        },
        duration_us: us,
        upstream_us: (class == Class::Success).then_some(us / 2),
        upstream_error: None,
        rate_limit: None,
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        claimed_app: Some("claimed"),
    }
}

/// MON-1: counts from several threads add up exactly; the exposition has
/// histogram buckets and carries no IP.
#[test]
fn mon_1_counts_add_up_across_threads_and_encode() {
    let m = Metrics::new(true);
    let app = intern("mtest_app");
    let api = intern("mtest_api");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let m = &m;
            s.spawn(move || {
                for i in 0..250 {
                    m.observe(&call(app, api, Class::Success, Kind::None, 1_000 + i));
                }
            });
        }
    });
    m.observe(&call(app, api, Class::Refused, Kind::Auth, 200));
    let text = m.encode();
    assert!(
        text.contains(
            "menshen_calls_total{app=\"mtest_app\",api=\"mtest_api\",level=\"A1\",class=\"success\"} 1000"
        ),
        "{text}"
    );
    assert!(text.contains("menshen_call_duration_seconds_bucket{le=\"+Inf\",app=\"mtest_app\",api=\"mtest_api\",level=\"A1\",class=\"success\"} 1000"), "{text}");
    assert!(
        text.contains("menshen_refusals_total{code=\"INVALID_SIGNATURE\"} 1"),
        "{text}"
    );
    assert!(!text.contains("192.0.2.7"));
    assert!(text.ends_with("# EOF\n"));
    for f in prom::FAMILIES {
        assert!(text.contains(&format!("# TYPE {f} ")), "{f} missing");
    }
    let st = m.stats();
    let f = st.window(Subject::App(app), 60);
    assert_eq!(f.calls, 1001);
    assert_eq!(f.success, 1000);
    assert_eq!(f.auth_failures, 1);
    let p50 = f.p50_ms.unwrap();
    assert!((1.0..=1.5).contains(&p50), "{p50}");
    let (ips, overflow) = st.client_ip_failures(300);
    assert_eq!(overflow, 0);
    assert_eq!(ips.len(), 1);
    assert_eq!(ips[0].failures, 1);
    assert_eq!(ips[0].auth_failures, 1);
    assert_eq!(ips[0].distinct_app_ids, 1);
}

/// MON-1: windows roll: a call leaves the minute after 60 s, the hour
/// after an hour, the day after a day.
#[test]
fn mon_1_windows_roll_with_time() {
    let m = Metrics::new(true);
    let app = intern("mtest_roll_app");
    let api = intern("mtest_roll_api");
    let st = m.stats();
    let t0 = 1_800_000_000;
    for _ in 0..10 {
        m.observe(&call(app, api, Class::Success, Kind::None, 500));
    }
    m.observe(&call(app, api, Class::Refused, Kind::NotGranted, 500));
    let f = st.window_at(Subject::Api(api), 60, t0);
    assert_eq!(
        (f.calls, f.success, f.not_granted, f.refused),
        (11, 10, 1, 1)
    );
    assert_eq!(f.success_rate, Some(10.0 / 11.0));
    assert_eq!(st.window_at(Subject::Api(api), 60, t0 + 59).calls, 11);
    assert_eq!(st.window_at(Subject::Api(api), 60, t0 + 61).calls, 0);
    assert_eq!(st.window_at(Subject::Api(api), 3600, t0 + 61).calls, 11);
    assert_eq!(st.window_at(Subject::Api(api), 3600, t0 + 3700).calls, 0);
    assert_eq!(st.window_at(Subject::Api(api), 86_400, t0 + 3700).calls, 11);
    assert_eq!(
        st.window_at(Subject::Api(api), 86_400, t0 + 90_000).calls,
        0
    );
}

#[test]
fn disabled_metrics_count_nothing() {
    let m = Metrics::new(false);
    let app = intern("mtest_off");
    m.observe(&call(app, app, Class::Success, Kind::None, 10));
    assert!(!m.encode().contains("mtest_off"));
    assert_eq!(m.stats().window(Subject::App(app), 60).calls, 0);
}

/// Every family written is documented in docs/operations.md.
#[test]
fn mon_1_every_family_is_documented() {
    let doc = include_str!("../../../docs/operations.md");
    for f in prom::FAMILIES {
        let counter = format!("`{f}_total`");
        let plain = format!("`{f}`");
        assert!(
            doc.contains(&counter) || doc.contains(&plain),
            "{f} is not in docs/operations.md"
        );
    }
}

/// TRF-2 hook: breaker events are counted by upstream and event.
#[test]
fn breaker_events_are_counted_by_upstream() {
    let m = Metrics::new(true);
    let up = intern("core-banking-test");
    m.breaker_event(up, BreakerEvent::Opened);
    m.breaker_event(up, BreakerEvent::Rejected);
    m.breaker_event(up, BreakerEvent::Rejected);
    let text = m.encode();
    assert!(
        text.contains(
            "menshen_breaker_events_total{upstream=\"core-banking-test\",event=\"rejected\"} 2"
        ),
        "{text}"
    );
}

//! `BatchProcessor`'s recommended settings yield to the SDK's `OTEL_BLRP_*`
//! variables. The variables are the process's own, so this binary holds one
//! test that sets them in turn.

use djehouty::BatchProcessor;

fn config() -> String {
    format!("{:?}", BatchProcessor::recommended_config())
}

#[test]
fn otel_blrp_variables_win_over_the_recommended_settings() {
    for name in [
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY",
    ] {
        std::env::remove_var(name);
    }
    let recommended = config();
    for expected in [
        "max_queue_size: 65536",
        "max_export_batch_size: 1024",
        "scheduled_delay: 200ms",
    ] {
        assert!(
            recommended.contains(expected),
            "{expected} in {recommended}"
        );
    }

    std::env::set_var("OTEL_BLRP_MAX_QUEUE_SIZE", "4096");
    std::env::set_var("OTEL_BLRP_SCHEDULE_DELAY", "50");
    // Not a number: the SDK ignores it, so the recommended value holds.
    std::env::set_var("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "lots");
    let from_env = config();
    for expected in [
        "max_queue_size: 4096",
        "max_export_batch_size: 1024",
        "scheduled_delay: 50ms",
    ] {
        assert!(from_env.contains(expected), "{expected} in {from_env}");
    }

    std::env::set_var("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100");
    let from_env = config();
    assert!(
        from_env.contains("max_export_batch_size: 100 "),
        "{from_env}"
    );
}

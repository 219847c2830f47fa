//! The exporter's counters as OpenTelemetry metrics: delivered and dropped
//! records, what waits, under the names the documentation gives, compared
//! with what the receiver counted.

use djehouty_testkit as support;

use std::collections::HashMap;
use std::time::Duration;

use djehouty::GelfExporter;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use support::{Framing, Receiver};

/// One collected point: (metric, its attributes as text, value).
type Points = HashMap<(String, Vec<(String, String)>), i128>;

fn points(collected: &[ResourceMetrics]) -> Points {
    let mut points = Points::new();
    let attrs = |kvs: &mut dyn Iterator<Item = &KeyValue>| {
        let mut kvs: Vec<(String, String)> = kvs
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        kvs.sort();
        kvs
    };
    for rm in collected {
        for scope in rm.scope_metrics() {
            assert_eq!(scope.scope().name(), "djehouty");
            for metric in scope.metrics() {
                let name = metric.name().to_string();
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                        for p in sum.data_points() {
                            let key = (name.clone(), attrs(&mut p.attributes()));
                            points.insert(key, i128::from(p.value()));
                        }
                    }
                    AggregatedMetrics::I64(MetricData::Sum(sum)) => {
                        for p in sum.data_points() {
                            let key = (name.clone(), attrs(&mut p.attributes()));
                            points.insert(key, i128::from(p.value()));
                        }
                    }
                    other => panic!("{name}: unexpected {other:?}"),
                }
            }
        }
    }
    points
}

#[test]
fn counters_are_published_as_metrics() {
    let receiver = Receiver::tcp(Framing::Nul);
    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
        .with_meter_provider(&meter_provider)
        .build()
        .expect("build");
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    let logger = provider.logger("metrics-test");
    const N: usize = 25;
    for i in 0..N {
        let mut record = logger.create_log_record();
        record.set_body(AnyValue::from(format!("record {i}")));
        logger.emit(record);
    }
    provider.force_flush().expect("flush");
    assert_eq!(receiver.wait_frames(N, Duration::from_secs(10)).len(), N);

    meter_provider.force_flush().expect("collect");
    let collected = metrics.get_finished_metrics().expect("metrics");
    let points = points(&collected);
    let base = vec![
        (
            "otel.component.name".to_string(),
            "djehouty::GelfExporter/0".to_string(),
        ),
        (
            "otel.component.type".to_string(),
            "djehouty::GelfExporter".to_string(),
        ),
        ("server.address".to_string(), "127.0.0.1".to_string()),
        ("server.port".to_string(), receiver.port().to_string()),
    ];
    let with = |extra: &[(&str, &str)]| {
        let mut kvs = base.clone();
        kvs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        kvs.sort();
        kvs
    };
    let get = |name: &str, attrs: Vec<(String, String)>| {
        points
            .get(&(name.to_string(), attrs))
            .copied()
            .unwrap_or_else(|| panic!("no {name} point in {points:#?}"))
    };
    // What the receiver counted, not what the exporter says.
    assert_eq!(get("otel.sdk.exporter.log.exported", with(&[])), N as i128);
    for reason in ["buffer_full", "shutdown", "rejected"] {
        let attrs = with(&[("error.type", reason)]);
        assert_eq!(get("otel.sdk.exporter.log.exported", attrs), 0, "{reason}");
    }
    assert_eq!(get("otel.sdk.exporter.log.inflight", with(&[])), 0);
    assert_eq!(get("djehouty.exporter.buffer.usage", with(&[])), 0);
    assert_eq!(get("djehouty.exporter.log.unacknowledged", with(&[])), 0);
    assert_eq!(get("djehouty.exporter.log.truncated", with(&[])), 0);
    assert_eq!(get("djehouty.exporter.connections", with(&[])), 1);
    assert_eq!(get("djehouty.exporter.failures", with(&[])), 0);
    assert_eq!(points.len(), 10, "{points:#?}");
    provider.shutdown().expect("shutdown");
    meter_provider.shutdown().expect("meter shutdown");
}

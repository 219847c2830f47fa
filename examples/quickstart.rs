//! Ships real records through the whole pipeline and shows what arrived:
//!
//! `tracing` → `opentelemetry-appender-tracing` → `SdkLoggerProvider` →
//! `djehouty::DirectProcessor` → `GelfExporter` → TLS → a GELF receiver this
//! example starts on loopback, with a certificate authority and a server
//! certificate it generates at run time. It logs three records (one inside an
//! OpenTelemetry span, so it carries a trace id), prints them on the console
//! as the application sees them, then prints each GELF frame the receiver got
//! and the exporter's counters. It fails if a record did not arrive.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    // 1. A throw-away PKI and a TLS GELF receiver on 127.0.0.1.
    let pki = Pki::generate()?;
    let (port, frames) = start_tls_receiver(&pki)?;
    println!("GELF/TLS receiver listening on 127.0.0.1:{port}\n");

    // 2. The exporter: TLS, verified against the generated CA.
    let exporter = djehouty::GelfExporter::builder()
        .with_endpoint(format!("tls://localhost:{port}"))
        .with_ca_file(pki.dir.path().join("ca.pem"))
        .with_extra("environment", "demo")
        .build()?;
    let counters = exporter.counters();

    // 3. The OpenTelemetry pipeline, with a resource naming the service. The
    //    demo fixes the name, which overrides OTEL_SERVICE_NAME; an application
    //    should let the variable win (see `resource` in examples/logs_data_platform.rs).
    let resource = Resource::builder()
        .with_service_name("quickstart")
        .with_attribute(KeyValue::new("service.version", "1.0.0"))
        .build();
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    // RUST_LOG chooses what is logged, `info` by default. The exported logs
    // leave out the SDK's and the exporter's own diagnostics; the console
    // shows them, warnings about delivery included.
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel_filter = filter()
        .add_directive("opentelemetry=off".parse()?)
        .add_directive("djehouty=off".parse()?);
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider).with_filter(otel_filter))
        .with(tracing_subscriber::fmt::layer().with_filter(filter()))
        .init();

    // 4. Log through `tracing`, once inside an OpenTelemetry span so the record
    //    carries its trace context.
    tracing::info!(
        user = "alice",
        cart_items = 3,
        total = 42.5,
        "checkout started"
    );
    tracing::warn!(
        name: "payment.retry",
        target: "shop::payment",
        attempt = 2,
        card_present = false,
        "payment gateway slow, retrying"
    );
    let tracer_provider = SdkTracerProvider::builder().build();
    let tracer = tracer_provider.tracer("quickstart");
    tracer.in_span("checkout", |_cx| {
        tracing::error!(
            error.kind = "timeout",
            "order 1234 failed\nthe payment gateway did not answer within 5 s"
        );
    });

    // 5. Flush and close: the batch is written before `shutdown` returns.
    provider.shutdown()?;
    let _ = tracer_provider.shutdown();

    // 6. Show what the receiver got.
    println!();
    let mut received = 0;
    while let Ok(frame) = frames.recv_timeout(Duration::from_secs(5)) {
        received += 1;
        let json: serde_json::Value = serde_json::from_slice(&frame)?;
        println!("record {received} ({} bytes on the wire):", frame.len() + 1);
        println!("{}\n", serde_json::to_string_pretty(&json)?);
        if received == 3 {
            break;
        }
    }
    let stats = counters.snapshot();
    println!(
        "{received} of 3 records arrived over TLS (exporter counters: {} exported, \
         {} dropped, {} connection(s)).",
        stats.exported,
        stats.dropped(),
        stats.connections
    );
    if received != 3 {
        return Err("some records did not arrive".into());
    }
    Ok(())
}

/// A CA and a `localhost` server certificate, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn generate() -> Result<Pki, BoxError> {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(receiver_provider()?)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone()], key)?;
        Ok(Pki {
            dir,
            server: Arc::new(server),
        })
    }
}

/// The receiver's crypto provider: that of djehouty's `aws-lc-rs` or `ring`
/// feature, else the process default.
fn receiver_provider() -> Result<Arc<rustls::crypto::CryptoProvider>, BoxError> {
    #[cfg(feature = "aws-lc-rs")]
    let compiled = Some(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let compiled = Some(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    let compiled = None;
    match (compiled, rustls::crypto::CryptoProvider::get_default()) {
        (Some(provider), _) => Ok(Arc::new(provider)),
        (None, Some(provider)) => Ok(Arc::clone(provider)),
        (None, None) => {
            Err("no TLS crypto provider: enable the `aws-lc-rs` or `ring` feature".into())
        }
    }
}

/// Accepts TLS connections and sends every NUL-terminated frame to the channel.
fn start_tls_receiver(pki: &Pki) -> Result<(u16, mpsc::Receiver<Vec<u8>>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    let config = Arc::clone(&pki.server);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (tx, config) = (tx.clone(), Arc::clone(&config));
            std::thread::spawn(move || serve(stream, config, tx));
        }
    });
    Ok((port, rx))
}

fn serve(stream: TcpStream, config: Arc<rustls::ServerConfig>, tx: mpsc::Sender<Vec<u8>>) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut pending = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(n) = tls.read(&mut chunk) {
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == 0) {
            let frame: Vec<u8> = pending.drain(..=end).take(end).collect();
            let _ = tx.send(frame);
        }
    }
}

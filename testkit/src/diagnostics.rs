//! The exporter's own diagnostics as a test sees them: a `tracing` layer
//! ([`Capture`]) that keeps every event of target `djehouty` with its level
//! and fields.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// One event of the exporter's: its level and fields (`name` among them).
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The event's level.
    pub level: tracing::Level,
    /// Its fields, each as text.
    pub fields: BTreeMap<String, String>,
}

impl Diagnostic {
    /// The event's name (its `name` field), or empty.
    pub fn name(&self) -> &str {
        self.field("name")
    }

    /// A field's value, or empty.
    pub fn field(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }
}

/// A layer keeping every event the exporter emits (target `djehouty`).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Diagnostic>>>);

impl Capture {
    /// The events kept so far named `name`.
    pub fn named(&self, name: &str) -> Vec<Diagnostic> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter(|d| d.name() == name).cloned().collect()
    }

    /// Forgets the events kept so far.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "djehouty" {
            return;
        }
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let diagnostic = Diagnostic {
            level: *event.metadata().level(),
            fields: fields.0,
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(diagnostic);
    }
}

//! Log processors: how records reach the pipeline.
//!
//! [`DirectProcessor`] encodes each record on the thread that logs it and
//! stages the bytes ([`stage`]); [`BatchProcessor`] is the SDK's batch
//! processor around the exporter, with settings for busy services.

mod batch;
mod direct;
mod stage;

pub use batch::{
    BatchProcessor, RECOMMENDED_MAX_EXPORT_BATCH_SIZE, RECOMMENDED_MAX_QUEUE_SIZE,
    RECOMMENDED_SCHEDULED_DELAY,
};
pub use direct::DirectProcessor;

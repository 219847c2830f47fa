//! Encoder benchmarks (filled in with the encoders' public benchmark hooks).
fn main() {}

//! Test helpers shared by the property and fuzz tests.

// Each test binary uses only part of this module.
#![allow(dead_code, unused_imports)]

pub mod generators;
pub mod oracles;

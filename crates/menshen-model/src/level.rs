//! Security levels (LVL-2) and the level profile.

use serde::{Deserialize, Serialize};

/// Security level of an API (LVL-2): A1 public product information, A2 account
/// information, A3 funds movement and service signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Public product information, read-only.
    A1,
    /// Account information.
    A2,
    /// Funds movement, service signing.
    A3,
}

impl Level {
    /// Parse `A1`/`A2`/`A3` (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "A1" => Some(Level::A1),
            "A2" => Some(Level::A2),
            "A3" => Some(Level::A3),
            _ => None,
        }
    }
    /// `A1`, `A2` or `A3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::A1 => "A1",
            Level::A2 => "A2",
            Level::A3 => "A3",
        }
    }
}

str_enum!(
    /// Level profile (LVL-2): three levels (default), or two levels where A2
    /// also covers funds movement (JR/T 0185-2020, Q/GXGB 0003-2020).
    LevelProfile { ThreeLevel = "three-level", TwoLevel = "two-level" }
);

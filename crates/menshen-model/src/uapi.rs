//! U_API_ID (统一识别码): the 24-character uniform API identifier of
//! Q/CMBC 003-2022 Annex A (UID-1, UID-2).
//!
//! Layout (ASCII, 24 characters):
//!
//! | chars | field | rule |
//! |---|---|---|
//! | 0-1 | prefix | `0P` (Annex A prints a zero; `OP` is accepted on decode) |
//! | 2-7 | institution | first 6 characters of the JR/T 0124 institution code, `[0-9A-Z]` |
//! | 8-9 | type | `01` = A1, `02` = A2/A3 (`00` reserved) |
//! | 10-11 | category | first-level service category `01`-`99` |
//! | 12-15 | subcategory | second-level category `0001`-`9999` (`0000` reserved) |
//! | 16-21 | sequence | `000001`-`999999`, consecutive per institution/type/category |
//! | 22-23 | suffix | `00` |

use std::fmt;

use crate::Level;

/// Length of every U_API_ID.
pub const UAPI_LEN: usize = 24;

/// Error decoding or building a U_API_ID; `field` names the failing part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid U_API_ID {field}: {reason}")]
pub struct UApiIdError {
    /// Which field failed (`length`, `prefix`, `institution`, `type`, `category`,
    /// `subcategory`, `sequence`, `suffix`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> UApiIdError {
    UApiIdError {
        field,
        reason: reason.into(),
    }
}

/// The 2-character type code of a U_API_ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UApiType {
    /// `01`: A1 APIs (public product information, read only).
    A1,
    /// `02`: A2 and A3 APIs (account information and funds movement).
    A2A3,
}

impl UApiType {
    /// The type code for an API of `level`.
    pub fn for_level(level: Level) -> Self {
        match level {
            Level::A1 => UApiType::A1,
            Level::A2 | Level::A3 => UApiType::A2A3,
        }
    }
    /// The two digits written in the identifier.
    pub fn code(self) -> &'static str {
        match self {
            UApiType::A1 => "01",
            UApiType::A2A3 => "02",
        }
    }
}

/// Name of a first-level service category, per Annex A.
pub fn category_name(category: u8) -> &'static str {
    match category {
        1 => "accounts (账户)",
        2 => "payment and settlement (支付结算)",
        3 => "wealth management (财富管理)",
        4 => "credit (信贷)",
        5 => "credit card (信用卡)",
        6 => "industry services (行业服务)",
        7 => "international business (国际业务)",
        8 => "technology services (科技服务)",
        _ => "further category (extension)",
    }
}

/// A decoded, valid U_API_ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UApiId {
    /// The prefix as written (`0P` or `OP`).
    pub prefix: String,
    /// Six-character institution code.
    pub institution: String,
    /// Type code.
    pub kind: UApiType,
    /// First-level category, 1-99.
    pub category: u8,
    /// Second-level category, 1-9999.
    pub subcategory: u16,
    /// Sequence number, 1-999999.
    pub sequence: u32,
}

fn digits(s: &str, field: &'static str) -> Result<u32, UApiIdError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(field, format!("`{s}` must be {} digits", s.len())));
    }
    s.parse::<u32>()
        .map_err(|_| err(field, format!("`{s}` is not a number")))
}

/// Check a 6-character institution code.
pub fn validate_institution(code: &str) -> Result<(), UApiIdError> {
    if code.len() != 6
        || !code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err(err(
            "institution",
            format!("`{code}` must be 6 characters of 0-9 or A-Z (first 6 of the JR/T 0124 code)"),
        ));
    }
    Ok(())
}

/// Check a generator prefix (`0P` by default; `OP` also allowed).
pub fn validate_prefix(prefix: &str) -> Result<(), UApiIdError> {
    if prefix == "0P" || prefix == "OP" {
        Ok(())
    } else {
        Err(err("prefix", format!("`{prefix}` must be `0P` (or `OP`)")))
    }
}

impl UApiId {
    /// Build one from parts, checking every field.
    pub fn new(
        prefix: &str,
        institution: &str,
        kind: UApiType,
        category: u8,
        subcategory: u16,
        sequence: u32,
    ) -> Result<Self, UApiIdError> {
        validate_prefix(prefix)?;
        validate_institution(institution)?;
        if !(1..=99).contains(&category) {
            return Err(err("category", format!("{category} must be 01-99")));
        }
        if !(1..=9999).contains(&subcategory) {
            return Err(err(
                "subcategory",
                format!("{subcategory} must be 0001-9999 (0000 is reserved)"),
            ));
        }
        if !(1..=999_999).contains(&sequence) {
            return Err(err("sequence", format!("{sequence} must be 000001-999999")));
        }
        Ok(UApiId {
            prefix: prefix.to_string(),
            institution: institution.to_string(),
            kind,
            category,
            subcategory,
            sequence,
        })
    }

    /// Decode and validate a 24-character identifier.
    pub fn decode(s: &str) -> Result<Self, UApiIdError> {
        if !s.is_ascii() {
            return Err(err("length", "must be 24 ASCII characters"));
        }
        if s.len() != UAPI_LEN {
            return Err(err(
                "length",
                format!("must be 24 characters, got {}", s.len()),
            ));
        }
        validate_prefix(&s[0..2])?;
        validate_institution(&s[2..8])?;
        let kind = match &s[8..10] {
            "01" => UApiType::A1,
            "02" => UApiType::A2A3,
            "00" => return Err(err("type", "`00` is reserved")),
            other => {
                return Err(err(
                    "type",
                    format!("`{other}` must be 01 (A1) or 02 (A2/A3)"),
                ))
            }
        };
        let category = digits(&s[10..12], "category")?;
        if category == 0 {
            return Err(err("category", "`00` is not a category (01-99)"));
        }
        let subcategory = digits(&s[12..16], "subcategory")?;
        if subcategory == 0 {
            return Err(err("subcategory", "`0000` is reserved (0001-9999)"));
        }
        let sequence = digits(&s[16..22], "sequence")?;
        if sequence == 0 {
            return Err(err(
                "sequence",
                "`000000` is not a sequence (000001-999999)",
            ));
        }
        if &s[22..24] != "00" {
            return Err(err("suffix", format!("`{}` must be `00`", &s[22..24])));
        }
        Ok(UApiId {
            prefix: s[0..2].to_string(),
            institution: s[2..8].to_string(),
            kind,
            // Both fit: two and four digits.
            category: category as u8,
            subcategory: subcategory as u16,
            sequence,
        })
    }

    /// A human explanation of every field, one per line.
    pub fn explain(&self) -> String {
        format!(
            "U_API_ID     {self}\n\
             prefix       {}\n\
             institution  {} (first 6 characters of the JR/T 0124 institution code)\n\
             type         {} ({})\n\
             category     {:02} {}\n\
             subcategory  {:04}\n\
             sequence     {:06}\n\
             suffix       00",
            self.prefix,
            self.institution,
            self.kind.code(),
            match self.kind {
                UApiType::A1 => "A1: public product information",
                UApiType::A2A3 => "A2/A3: account information or funds movement",
            },
            self.category,
            category_name(self.category),
            self.subcategory,
            self.sequence,
        )
    }
}

impl fmt::Display for UApiId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}{:02}{:04}{:06}00",
            self.prefix,
            self.institution,
            self.kind.code(),
            self.category,
            self.subcategory,
            self.sequence
        )
    }
}

impl std::str::FromStr for UApiId {
    type Err = UApiIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UApiId::decode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_1_round_trip() {
        let id = UApiId::new("0P", "C10305", UApiType::A2A3, 2, 15, 42).unwrap();
        let s = id.to_string();
        assert_eq!(s, "0PC103050202001500004200");
        assert_eq!(s.len(), 24);
        assert_eq!(UApiId::decode(&s).unwrap(), id);
        assert!(id.explain().contains("payment and settlement"));
    }

    #[test]
    fn uid_1_accepts_letter_o_prefix() {
        let id = UApiId::decode("OPC103050101000100000100").unwrap();
        assert_eq!(id.prefix, "OP");
        assert_eq!(id.kind, UApiType::A1);
        assert_eq!(id.sequence, 1);
    }

    #[test]
    fn uid_1_each_bad_field_is_named() {
        let good = "0PC10305010100010000 0100".replace(' ', "");
        assert!(UApiId::decode(&good).is_ok(), "{good}");
        let cases: &[(&str, &str)] = &[
            ("0PC1030501010001000001", "length"),
            ("0PC103050101000100000100X", "length"),
            ("XPC10305010100010000 0100", "prefix"),
            ("0Pc10305010100010000 0100", "institution"),
            ("0PC1030-010100010000 0100", "institution"),
            ("0PC10305000100010000 0100", "type"),
            ("0PC10305030100010000 0100", "type"),
            ("0PC10305010000010000 0100", "category"),
            ("0PC1030501A100010000 0100", "category"),
            ("0PC10305010100000000 0100", "subcategory"),
            ("0PC10305010100010000 0000", "sequence"),
            ("0PC1030501010001000A 0100", "sequence"),
            ("0PC10305010100010000 0101", "suffix"),
            ("0PC10305010100010000 01中", "length"),
        ];
        for (input, field) in cases {
            let input = input.replace(' ', "");
            let e = UApiId::decode(&input).unwrap_err();
            assert_eq!(e.field, *field, "{input}: {e}");
        }
    }

    #[test]
    fn uid_1_builder_rejects_out_of_range() {
        assert_eq!(
            UApiId::new("0P", "C10305", UApiType::A1, 0, 1, 1)
                .unwrap_err()
                .field,
            "category"
        );
        assert_eq!(
            UApiId::new("0P", "C10305", UApiType::A1, 1, 0, 1)
                .unwrap_err()
                .field,
            "subcategory"
        );
        assert_eq!(
            UApiId::new("0P", "C10305", UApiType::A1, 1, 1, 1_000_000)
                .unwrap_err()
                .field,
            "sequence"
        );
        assert_eq!(
            UApiId::new("0Q", "C10305", UApiType::A1, 1, 1, 1)
                .unwrap_err()
                .field,
            "prefix"
        );
    }
}

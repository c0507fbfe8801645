//! `menshen uapi ...`: decode and encode U_API_IDs (offline).

use menshen_model::{UApiId, UApiType};

use super::UapiCmd;

/// `menshen uapi ...`
pub fn uapi(cmd: UapiCmd) -> anyhow::Result<()> {
    match cmd {
        UapiCmd::Decode { code } => {
            let id = UApiId::decode(code.trim()).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::out!("{}", id.explain());
        }
        UapiCmd::Encode {
            institution,
            level,
            category,
            subcategory,
            sequence,
            prefix,
        } => {
            let level = menshen_model::Level::parse(&level)
                .ok_or_else(|| anyhow::anyhow!("--level: must be A1, A2 or A3"))?;
            let id = UApiId::new(
                &prefix,
                &institution,
                UApiType::for_level(level),
                category,
                subcategory,
                sequence,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::out!("{id}");
        }
    }
    Ok(())
}

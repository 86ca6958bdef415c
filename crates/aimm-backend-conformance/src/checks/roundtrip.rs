//! Stores and reads back: every read path returns what was stored, also after reopening.

use super::support::*;
use super::{check, Check, CheckResult};
use crate::Target;

/// The checks of this capability, in the order they run.
pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            create_returns_the_stored_model,
            "create_model returns the model as stored; get_model, get_models and a reopened backend return the same 1,000 bytes"
        ),
        check!(
            roundtrip_empty,
            "a model of 0 bytes is stored and read back as 0 bytes, also after reopening"
        ),
        check!(
            roundtrip_one_byte,
            "a model of one zero byte is read back exactly"
        ),
        check!(
            roundtrip_all_byte_values,
            "every byte value 0..=255 survives storing, in both orders"
        ),
        check!(
            roundtrip_16_mib,
            "a model of 16 MiB is read back byte-exact by every read path and after reopening"
        ),
        check!(
            roundtrip_unicode_type,
            "a model type of any Unicode text (Cyrillic, CJK, emoji, quotes) is kept exactly"
        ),
    ]
}

fn create_returns_the_stored_model(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.create", bytes_for("create", 1000))
}

fn roundtrip_empty(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.empty", Vec::new())
}

fn roundtrip_one_byte(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.one", vec![0x00])
}

fn roundtrip_all_byte_values(target: &dyn Target) -> CheckResult {
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    roundtrip(target, "conformance.bytes", bytes)
}

fn roundtrip_16_mib(target: &dyn Target) -> CheckResult {
    roundtrip(target, "conformance.large", bytes_for("large", 16 << 20))
}

fn roundtrip_unicode_type(target: &dyn Target) -> CheckResult {
    roundtrip(
        target,
        "модель/模型 ✓ — 🧠 \"quoted\" 'x'",
        bytes_for("unicode", 10),
    )
}

//! Go's base64 encodings, as the Kubernetes API server (and the services the sim stands in
//! for) decode them: the `base64` crate's engines configured to Go's rules.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Go's `base64.StdEncoding`, which Kubernetes uses for a Secret's `data` and a PEM body:
/// padded, and (Go's decoder not being `Strict`) the unused bits of the last symbol are
/// not checked.
pub(crate) const STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Go's `base64.RawURLEncoding` (no padding), the encoding of a list's continue token.
pub(crate) const RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// As Go's `encoding/base64` decides (`base64_test.go`): padding required by Std and
    /// refused by RawURL, unused trailing bits not checked by either.
    #[test]
    fn decodes_as_go_does() {
        assert_eq!(STD.decode("Zm9v").unwrap(), b"foo");
        assert_eq!(STD.decode("Zg==").unwrap(), b"f");
        assert_eq!(STD.decode("Zh==").unwrap(), b"f");
        assert!(STD.decode("Zg").is_err());
        assert_eq!(RAW_URL.decode("Zg").unwrap(), b"f");
        assert!(RAW_URL.decode("Zg==").is_err());
        assert_eq!(RAW_URL.decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(RAW_URL.encode([0xfb, 0xff]), "-_8");
    }
}

//! A lenient PEM reader: any number of `-----BEGIN X-----` blocks in one file,
//! text around them ignored (as `openssl` does with its "Bag Attributes"),
//! lines of any width. Legacy encapsulated headers (`Proc-Type`) are reported
//! rather than decoded.

use base64ct::{Base64, Encoding};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    /// The block had RFC 1421 headers (`Proc-Type: 4,ENCRYPTED` ...).
    pub has_headers: bool,
    pub der: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("PEM block '{0}' has no END line")]
    Unterminated(String),
    #[error("PEM block '{0}' is not valid base64")]
    BadBase64(String),
    #[error("PEM block '{0}' ends with '-----END {1}-----'")]
    Mismatch(String, String),
}

/// Whether the bytes look like PEM text (a BEGIN line after optional text).
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.contains("-----BEGIN "))
}

/// Reads every PEM block of `text`, in file order.
pub fn parse_blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = marker(line, "BEGIN") else {
            continue;
        };
        let mut body = String::new();
        let mut has_headers = false;
        let mut ended = false;
        for inner in lines.by_ref() {
            if let Some(end) = marker(inner, "END") {
                if end != label {
                    return Err(PemError::Mismatch(label, end));
                }
                ended = true;
                break;
            }
            let inner = inner.trim();
            if inner.contains(':') {
                has_headers = true;
                continue;
            }
            body.push_str(inner);
        }
        if !ended {
            return Err(PemError::Unterminated(label));
        }
        let der = if has_headers {
            Vec::new()
        } else {
            Base64::decode_vec(&body).map_err(|_| PemError::BadBase64(label.clone()))?
        };
        blocks.push(PemBlock {
            label,
            has_headers,
            der,
        });
    }
    Ok(blocks)
}

fn marker(line: &str, kind: &str) -> Option<String> {
    let line = line.trim();
    let rest = line
        .strip_prefix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')?;
    let label = rest.strip_suffix("-----")?;
    Some(label.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_blocks_and_skips_bag_attributes() {
        let text = "Bag Attributes\n    friendlyName: x\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n\n-----BEGIN PRIVATE KEY-----\nBAU=\n-----END PRIVATE KEY-----\n";
        let blocks = parse_blocks(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].der, vec![0, 1, 2, 3]);
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert!(looks_like_pem(text.as_bytes()));
    }

    #[test]
    fn reports_broken_blocks() {
        assert!(matches!(
            parse_blocks("-----BEGIN CERTIFICATE-----\nAAEC\n"),
            Err(PemError::Unterminated(_))
        ));
        assert!(matches!(
            parse_blocks("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"),
            Err(PemError::BadBase64(_))
        ));
        assert!(matches!(
            parse_blocks("-----BEGIN A-----\nAAEC\n-----END B-----"),
            Err(PemError::Mismatch(..))
        ));
    }

    #[test]
    fn flags_legacy_encrypted_headers() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse_blocks(text).unwrap();
        assert!(blocks[0].has_headers);
    }
}

/// Encodes DER as one PEM block, 64 base64 characters a line.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod encode_tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        let der: Vec<u8> = (0..=255).collect();
        let text = encode("CERTIFICATE", &der);
        assert!(text.lines().all(|l| l.len() <= 64));
        let blocks = parse_blocks(&text).unwrap();
        assert_eq!(blocks[0].der, der);
    }
}

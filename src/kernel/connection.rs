//! The connection file a Jupyter client writes for the kernel: ports, transport and key.

use anyhow::{bail, Context, Result};
use jupyter_protocol::ConnectionInfo;
use std::path::Path;

/// Reads and checks a connection file. Only HMAC-SHA256 signing is spoken (an empty key
/// means the client asked for no signing at all).
pub fn read(path: &Path) -> Result<ConnectionInfo> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read connection file {}", path.display()))?;
    parse(&text).with_context(|| format!("bad connection file {}", path.display()))
}

/// Parses the JSON text of a connection file.
pub fn parse(text: &str) -> Result<ConnectionInfo> {
    let info: ConnectionInfo = serde_json::from_str(text)?;
    if !info.key.is_empty() && info.signature_scheme != "hmac-sha256" {
        bail!("signature scheme {:?} is not supported; glassbox signs with \"hmac-sha256\"", info.signature_scheme);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
        "shell_port": 5001, "iopub_port": 5002, "stdin_port": 5003,
        "control_port": 5004, "hb_port": 5005, "ip": "127.0.0.1",
        "key": "a0436f6c-1916-498b-8eb9-e81ab9368e84",
        "transport": "tcp", "signature_scheme": "hmac-sha256",
        "kernel_name": "glassbox"
    }"#;

    #[test]
    fn parses_a_jupyter_client_connection_file() {
        let info = parse(FILE).unwrap();
        assert_eq!(info.shell_url(), "tcp://127.0.0.1:5001");
        assert_eq!(info.iopub_url(), "tcp://127.0.0.1:5002");
        assert_eq!(info.stdin_url(), "tcp://127.0.0.1:5003");
        assert_eq!(info.control_url(), "tcp://127.0.0.1:5004");
        assert_eq!(info.hb_url(), "tcp://127.0.0.1:5005");
        assert_eq!(info.key, "a0436f6c-1916-498b-8eb9-e81ab9368e84");
    }

    #[test]
    fn refuses_other_signature_schemes() {
        let err = parse(&FILE.replace("hmac-sha256", "hmac-md5")).unwrap_err();
        assert!(err.to_string().contains("hmac-md5"), "{err}");
    }

    #[test]
    fn refuses_a_file_without_ports() {
        assert!(parse(r#"{"ip": "127.0.0.1"}"#).is_err());
    }
}

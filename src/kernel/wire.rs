//! The Jupyter wire format: ZeroMQ frames to and from typed [`JupyterMessage`]s, signed with
//! HMAC-SHA256 over header, parent header, metadata and content (messaging spec 5.3,
//! "The Wire Protocol").

use bytes::Bytes;
use hmac::{Hmac, Mac};
use jupyter_protocol::{
    messaging::deserialize_parent_header, Header, JupyterMessage, JupyterMessageContent, UnknownMessage,
};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

/// Separates the routing identities from the message proper.
pub const DELIMITER: &[u8] = b"<IDS|MSG>";

/// Why a multipart message could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("no <IDS|MSG> delimiter among the frames")]
    NoDelimiter,
    #[error("{0} frames after the delimiter; a message needs signature, header, parent header, metadata and content")]
    TooFewFrames(usize),
    #[error("signature does not match the message (wrong key, or the message was altered)")]
    BadSignature,
    #[error("malformed {part}: {source}")]
    Json { part: &'static str, source: serde_json::Error },
}

/// Signs and checks messages with the session key from the connection file.
#[derive(Clone)]
pub struct Signer {
    mac: Option<Hmac<Sha256>>,
}

impl Signer {
    /// An empty key means the client disabled signing: signatures are empty and not checked.
    pub fn new(key: &str) -> Self {
        let mac =
            (!key.is_empty()).then(|| Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key"));
        Signer { mac }
    }

    fn mac_of(&self, parts: &[&[u8]]) -> Option<Hmac<Sha256>> {
        let mut mac = self.mac.clone()?;
        for p in parts {
            mac.update(p);
        }
        Some(mac)
    }

    /// Hex signature of the four signed frames.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        self.mac_of(parts).map(|m| hex::encode(m.finalize().into_bytes())).unwrap_or_default()
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, signature: &[u8], parts: &[&[u8]]) -> bool {
        match self.mac_of(parts) {
            None => true,
            Some(mac) => hex::decode(signature).is_ok_and(|sig| mac.verify_slice(&sig).is_ok()),
        }
    }
}

/// Decodes and verifies one multipart message. Identities are kept for the reply.
pub fn decode(frames: Vec<Bytes>, signer: &Signer) -> Result<JupyterMessage, WireError> {
    let at = frames.iter().position(|f| f.as_ref() == DELIMITER).ok_or(WireError::NoDelimiter)?;
    let rest = &frames[at + 1..];
    if rest.len() < 5 {
        return Err(WireError::TooFewFrames(rest.len()));
    }
    let signed: Vec<&[u8]> = rest[1..5].iter().map(|b| b.as_ref()).collect();
    if !signer.verify(&rest[0], &signed) {
        return Err(WireError::BadSignature);
    }
    let json =
        |part, bytes: &Bytes| serde_json::from_slice::<Value>(bytes).map_err(|source| WireError::Json { part, source });
    let header: Header = serde_json::from_value(json("header", &rest[1])?)
        .map_err(|source| WireError::Json { part: "header", source })?;
    let parent_header = deserialize_parent_header(json("parent header", &rest[2])?)
        .map_err(|source| WireError::Json { part: "parent header", source })?;
    let metadata = json("metadata", &rest[3])?;
    let content = parse_content(&header.msg_type, json("content", &rest[4])?);
    Ok(JupyterMessage {
        zmq_identities: frames[..at].to_vec(),
        header,
        parent_header,
        metadata,
        content,
        buffers: rest[5..].to_vec(),
        channel: None,
    })
}

/// Types the content. Content that does not fit its type's schema (which the protocol crate
/// reads more strictly than clients write, e.g. a `history_request` without `stop`) is kept
/// as an [`UnknownMessage`], so the dispatcher can still answer it; [`content_problem`] says
/// what was wrong.
fn parse_content(msg_type: &str, content: Value) -> JupyterMessageContent {
    JupyterMessageContent::from_type_and_content(msg_type, content.clone()).unwrap_or_else(|_| {
        JupyterMessageContent::UnknownMessage(UnknownMessage { msg_type: msg_type.to_owned(), content })
    })
}

/// Why an [`UnknownMessage`] did not parse as its type, or `None` if the type is unknown.
pub fn content_problem(msg: &UnknownMessage) -> Option<String> {
    JupyterMessageContent::from_type_and_content(&msg.msg_type, msg.content.clone())
        .err()
        .map(|e| format!("malformed {}: {e}", msg.msg_type))
        .filter(|_| KNOWN_REQUESTS.contains(&msg.msg_type.as_str()))
}

const KNOWN_REQUESTS: &[&str] = &[
    "execute_request",
    "inspect_request",
    "complete_request",
    "history_request",
    "is_complete_request",
    "comm_info_request",
    "kernel_info_request",
    "shutdown_request",
    "interrupt_request",
    "input_reply",
    "comm_open",
    "comm_msg",
    "comm_close",
];

/// Encodes and signs one message, identities first.
pub fn encode(msg: &JupyterMessage, signer: &Signer) -> Vec<Bytes> {
    let header = json_bytes(&msg.header);
    let parent = match &msg.parent_header {
        Some(p) => json_bytes(p),
        None => Bytes::from_static(b"{}"),
    };
    let metadata = json_bytes(&msg.metadata);
    let content = json_bytes(&msg.content);
    let signature = signer.sign(&[&header, &parent, &metadata, &content]);
    let mut frames = msg.zmq_identities.clone();
    frames.push(Bytes::from_static(DELIMITER));
    frames.extend([Bytes::from(signature), header, parent, metadata, content]);
    frames.extend(msg.buffers.iter().cloned());
    frames
}

fn json_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("message parts serialize to JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::{ExecuteRequest, KernelInfoRequest};

    fn signed_request(signer: &Signer) -> Vec<Bytes> {
        let msg = JupyterMessage::new(ExecuteRequest::new("1 + 1".into()), None)
            .with_zmq_identities(vec![Bytes::from_static(b"client-7")]);
        encode(&msg, signer)
    }

    #[test]
    fn round_trip_keeps_identities_type_and_content() {
        let signer = Signer::new("secret");
        let msg = decode(signed_request(&signer), &signer).unwrap();
        assert_eq!(msg.zmq_identities, vec![Bytes::from_static(b"client-7")]);
        assert_eq!(msg.header.msg_type, "execute_request");
        match msg.content {
            JupyterMessageContent::ExecuteRequest(req) => assert_eq!(req.code, "1 + 1"),
            other => panic!("wrong content {other:?}"),
        }
    }

    #[test]
    fn signature_is_the_hmac_sha256_of_the_four_parts() {
        // Reference value from Python: hmac.new(b"key", b"abcd", hashlib.sha256).hexdigest()
        let s = Signer::new("key");
        assert_eq!(
            s.sign(&[b"a", b"b", b"c", b"d"]),
            "2a31ec0ee8d878c9eece9fb0df79b3b90b2256240163aa5ee50d176d3d1121f8"
        );
    }

    #[test]
    fn tampered_content_is_refused() {
        let signer = Signer::new("secret");
        let mut frames = signed_request(&signer);
        let content = frames.last_mut().unwrap();
        *content = Bytes::from(String::from_utf8_lossy(content).replace("1 + 1", "2 + 2"));
        assert!(matches!(decode(frames, &signer), Err(WireError::BadSignature)));
    }

    #[test]
    fn a_message_signed_with_another_key_is_refused() {
        let frames = signed_request(&Signer::new("other key"));
        assert!(matches!(decode(frames, &Signer::new("secret")), Err(WireError::BadSignature)));
    }

    #[test]
    fn a_garbage_signature_is_refused_not_a_panic() {
        let signer = Signer::new("secret");
        let mut frames = signed_request(&signer);
        frames[2] = Bytes::from_static(b"not hex at all");
        assert!(matches!(decode(frames, &signer), Err(WireError::BadSignature)));
    }

    #[test]
    fn an_empty_key_disables_signing() {
        let signer = Signer::new("");
        let frames = encode(&JupyterMessage::new(KernelInfoRequest {}, None), &signer);
        assert_eq!(frames[1], Bytes::new());
        assert!(decode(frames, &signer).is_ok());
    }

    #[test]
    fn structural_errors_are_named() {
        let signer = Signer::new("k");
        assert!(matches!(decode(vec![Bytes::from_static(b"x")], &signer), Err(WireError::NoDelimiter)));
        let short = vec![Bytes::from_static(DELIMITER), Bytes::new(), Bytes::from_static(b"{}")];
        assert!(matches!(decode(short, &signer), Err(WireError::TooFewFrames(2))));
        let mut frames = signed_request(&signer);
        let n = frames.len();
        frames[n - 4] = Bytes::from_static(b"{broken");
        let parts: Vec<&[u8]> = frames[n - 4..].iter().map(|b| b.as_ref()).collect();
        frames[n - 5] = Bytes::from(signer.sign(&parts));
        assert!(matches!(decode(frames, &signer), Err(WireError::Json { part: "header", .. })));
    }

    #[test]
    fn content_that_misses_its_schema_is_kept_and_explained() {
        let signer = Signer::new("k");
        let mut msg = JupyterMessage::new(KernelInfoRequest {}, None);
        msg.header.msg_type = "execute_request".into(); // content {} lacks `code`
        let decoded = decode(encode(&msg, &signer), &signer).unwrap();
        let JupyterMessageContent::UnknownMessage(unknown) = &decoded.content else {
            panic!("expected an unknown message, got {:?}", decoded.content)
        };
        assert_eq!(unknown.msg_type, "execute_request");
        assert!(content_problem(unknown).unwrap().contains("code"));
        let other = UnknownMessage { msg_type: "frobnicate_request".into(), content: serde_json::json!({}) };
        assert_eq!(content_problem(&other), None);
    }
}

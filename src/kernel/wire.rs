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
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

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
    #[error("a message with this signature was already taken in (a replay)")]
    Replayed,
    #[error("the header names no msg_type, so no reply can be addressed")]
    NoMsgType,
    #[error("malformed {part}: {source}")]
    Json { part: &'static str, source: serde_json::Error },
}

/// Signs and checks messages with the session key from the connection file, and refuses a
/// signature it has seen before (ipykernel's digest history), so a captured message cannot be
/// sent again.
#[derive(Clone)]
pub struct Signer {
    mac: Option<Hmac<Sha256>>,
    seen: Arc<Mutex<Seen>>,
}

/// How many signatures are remembered: ipykernel's `digest_history_size`.
const SEEN_SIGNATURES: usize = 1 << 16;

/// The newest [`SEEN_SIGNATURES`] signatures, oldest forgotten first.
#[derive(Default)]
struct Seen {
    set: HashSet<Bytes>,
    order: VecDeque<Bytes>,
}

impl Seen {
    /// Whether `signature` is new; remembers it.
    fn first_sight(&mut self, signature: &Bytes) -> bool {
        if !self.set.insert(signature.clone()) {
            return false;
        }
        self.order.push_back(signature.clone());
        if self.order.len() > SEEN_SIGNATURES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

impl Signer {
    /// An empty key means the client disabled signing: signatures are empty and not checked.
    pub fn new(key: &str) -> Self {
        let mac =
            (!key.is_empty()).then(|| Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key"));
        Signer { mac, seen: Arc::default() }
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

    /// Whether a verified signature is new (always, when signing is off); remembers it. Hex
    /// digits are read in either case, so the same signature in other letters is the same.
    fn first_sight(&self, signature: &Bytes) -> bool {
        let canonical = Bytes::from(signature.to_ascii_lowercase());
        self.mac.is_none() || self.seen.lock().expect("seen signatures").first_sight(&canonical)
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, signature: &[u8], parts: &[&[u8]]) -> bool {
        match self.mac_of(parts) {
            None => true,
            Some(mac) => hex::decode(signature).is_ok_and(|sig| mac.verify_slice(&sig).is_ok()),
        }
    }
}

/// A signed message, taken in as far as it could be read.
#[derive(Debug)]
pub struct Inbound {
    pub msg: JupyterMessage,
    /// What made the message unreadable past its `msg_type` (a header field missing, a part
    /// that is not JSON, content that is not valid UTF-16 JSON text), if anything. A request
    /// with a problem is answered with an error reply of its type; its content is kept as an
    /// [`UnknownMessage`].
    pub problem: Option<String>,
}

/// Decodes and verifies one multipart message. Identities are kept for the reply. A message
/// that is signed and names its type comes back even when the rest is malformed, so that the
/// sender gets an error reply instead of silence.
pub fn decode(frames: Vec<Bytes>, signer: &Signer) -> Result<Inbound, WireError> {
    let at = frames.iter().position(|f| f.as_ref() == DELIMITER).ok_or(WireError::NoDelimiter)?;
    let rest = &frames[at + 1..];
    if rest.len() < 5 {
        return Err(WireError::TooFewFrames(rest.len()));
    }
    let signed: Vec<&[u8]> = rest[1..5].iter().map(|b| b.as_ref()).collect();
    if !signer.verify(&rest[0], &signed) {
        return Err(WireError::BadSignature);
    }
    if !signer.first_sight(&rest[0]) {
        return Err(WireError::Replayed);
    }
    let mut problems = Vec::new();
    let header = lenient_header(&rest[1], &mut problems)?;
    let mut part = |name: &str, bytes: &Bytes| match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(format!("the {name} is not JSON ({e})"));
            None
        }
    };
    let parent = part("parent header", &rest[2]);
    let metadata = part("metadata", &rest[3]).unwrap_or_else(|| Value::Object(Default::default()));
    let content = part("content", &rest[4]);
    let parent_header = match parent.map(deserialize_parent_header) {
        Some(Ok(parent)) => parent,
        Some(Err(e)) => {
            problems.push(format!("malformed parent header: {e}"));
            None
        }
        None => None,
    };
    let content = match content {
        Some(content) => parse_content(&header.msg_type, content),
        None => JupyterMessageContent::UnknownMessage(UnknownMessage {
            msg_type: header.msg_type.clone(),
            content: Value::Null,
        }),
    };
    let problem = (!problems.is_empty()).then(|| format!("malformed {}: {}", header.msg_type, problems.join("; ")));
    let msg = JupyterMessage {
        zmq_identities: frames[..at].to_vec(),
        header,
        parent_header,
        metadata,
        content,
        buffers: rest[5..].to_vec(),
        channel: None,
    };
    Ok(Inbound { msg, problem })
}

/// The header, with any of msg_id, session, username and version that is missing or not a
/// string left empty (and named in `problems`); only a missing msg_type is fatal, since
/// without it no reply can be addressed.
fn lenient_header(bytes: &Bytes, problems: &mut Vec<String>) -> Result<Header, WireError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|source| WireError::Json { part: "header", source })?;
    let mut fields = match value {
        Value::Object(fields) => fields,
        _ => return Err(WireError::NoMsgType),
    };
    if !fields.get("msg_type").is_some_and(Value::is_string) {
        return Err(WireError::NoMsgType);
    }
    let mut missing = Vec::new();
    for name in ["msg_id", "session", "username", "version"] {
        if !fields.get(name).is_some_and(Value::is_string) {
            missing.push(name);
            fields.insert(name.into(), Value::String(String::new()));
        }
    }
    if !missing.is_empty() {
        problems.push(format!("the header lacks {} (or has them as non-strings)", missing.join(", ")));
    }
    if fields.get("date").is_some_and(|d| !d.is_string()) {
        fields.remove("date");
    }
    serde_json::from_value(Value::Object(fields)).map_err(|source| WireError::Json { part: "header", source })
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

/// The protocol version glassbox speaks: 5.4 adds JEP 65's `iopub_welcome`.
pub const PROTOCOL_VERSION: &str = "5.4";

/// The kernel as the author of messages: its own session id and user name, a request's
/// identities.
#[derive(Clone)]
pub struct Author {
    pub session: String,
}

impl Author {
    /// A new session.
    pub fn new() -> Self {
        Author { session: uuid::Uuid::new_v4().to_string() }
    }

    /// A message with no parent.
    pub fn message(&self, content: impl Into<JupyterMessageContent>) -> JupyterMessage {
        self.child(None, content)
    }

    /// A message answering `parent`, addressed to its sender.
    pub fn child(&self, parent: Option<&JupyterMessage>, content: impl Into<JupyterMessageContent>) -> JupyterMessage {
        let mut msg = JupyterMessage::new(content, parent);
        msg.header.session.clone_from(&self.session);
        msg.header.username = "glassbox".into();
        msg.header.version = PROTOCOL_VERSION.into();
        msg
    }
}

impl Default for Author {
    fn default() -> Self {
        Self::new()
    }
}

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
        let msg = decode(signed_request(&signer), &signer).unwrap().msg;
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
        let decoded = decode(encode(&msg, &signer), &signer).unwrap().msg;
        let JupyterMessageContent::UnknownMessage(unknown) = &decoded.content else {
            panic!("expected an unknown message, got {:?}", decoded.content)
        };
        assert_eq!(unknown.msg_type, "execute_request");
        assert!(content_problem(unknown).unwrap().contains("code"));
        let other = UnknownMessage { msg_type: "frobnicate_request".into(), content: serde_json::json!({}) };
        assert_eq!(content_problem(&other), None);
    }

    /// Frames signed by `signer` with the given raw header and content bytes.
    fn raw(signer: &Signer, header: &str, content: &[u8]) -> Vec<Bytes> {
        let parts: [&[u8]; 4] = [header.as_bytes(), b"{}", b"{}", content];
        let mut frames = vec![Bytes::from_static(DELIMITER), Bytes::from(signer.sign(&parts))];
        frames.extend(parts.iter().map(|p| Bytes::copy_from_slice(p)));
        frames
    }

    #[test]
    fn a_replayed_message_is_refused_and_a_new_one_is_not() {
        let signer = Signer::new("secret");
        let frames = signed_request(&signer);
        assert!(decode(frames.clone(), &signer).is_ok());
        for _ in 0..3 {
            assert!(matches!(decode(frames.clone(), &signer), Err(WireError::Replayed)));
        }
        // The same code in a new message (new msg_id, so a new signature) is taken in.
        assert!(decode(signed_request(&signer), &signer).is_ok());
        // Clones share the history: a replay on another channel is refused too.
        assert!(matches!(decode(frames.clone(), &signer.clone()), Err(WireError::Replayed)));
        // The same signature in capitals still verifies, and is still a replay.
        let mut shouted = frames;
        shouted[2] = Bytes::from(shouted[2].to_ascii_uppercase());
        assert!(matches!(decode(shouted, &signer), Err(WireError::Replayed)));
    }

    #[test]
    fn the_signature_history_is_bounded_and_forgets_the_oldest_first() {
        let mut seen = Seen::default();
        let sig = |i: usize| Bytes::from(i.to_string());
        for i in 0..SEEN_SIGNATURES + 10 {
            assert!(seen.first_sight(&sig(i)));
        }
        assert_eq!(seen.set.len(), SEEN_SIGNATURES);
        assert!(seen.first_sight(&sig(3)), "the oldest were forgotten");
        assert!(!seen.first_sight(&sig(SEEN_SIGNATURES + 9)), "the newest are remembered");
    }

    #[test]
    fn a_header_missing_fields_still_names_its_type_and_the_problem() {
        let signer = Signer::new("k");
        let header = r#"{"msg_type": "kernel_info_request", "msg_id": 7}"#;
        let inbound = decode(raw(&signer, header, b"{}"), &signer).unwrap();
        assert_eq!(inbound.msg.header.msg_type, "kernel_info_request");
        let problem = inbound.problem.unwrap();
        for field in ["msg_id", "session", "username", "version"] {
            assert!(problem.contains(field), "{problem}");
        }
        let no_type = r#"{"msg_id": "1", "session": "s", "username": "u", "version": "5.3"}"#;
        assert!(matches!(decode(raw(&signer, no_type, b"{}"), &signer), Err(WireError::NoMsgType)));
        assert!(matches!(decode(raw(&signer, "[1, 2]", b"{}"), &signer), Err(WireError::NoMsgType)));
    }

    #[test]
    fn content_that_is_not_json_text_is_a_problem_not_a_refusal() {
        let signer = Signer::new("k");
        let header =
            r#"{"msg_type": "execute_request", "msg_id": "m", "session": "s", "username": "u", "version": "5.3"}"#;
        // A lone surrogate is valid JSON syntax but not a Unicode string.
        let inbound = decode(raw(&signer, header, br#"{"code": "\ud800"}"#), &signer).unwrap();
        assert!(inbound.problem.unwrap().contains("content"));
        assert!(matches!(inbound.msg.content, JupyterMessageContent::UnknownMessage(_)));
        let inbound = decode(raw(&signer, header, b"{not json"), &signer).unwrap();
        assert!(inbound.problem.is_some());
        let fine = decode(raw(&signer, header, br#"{"code": "1"}"#), &signer).unwrap();
        assert!(fine.problem.is_none());
    }
}

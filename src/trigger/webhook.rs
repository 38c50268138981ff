//! Webhook deliveries, without HTTP: where one goes, whether it proves it
//! comes from the tracker's sender, and what it names. The receiver hands
//! each delivery here; nothing in a payload is used as data (the pass reads
//! the issues from the tracker), only as a hint of where to look.

use std::collections::{HashSet, VecDeque};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The largest body accepted: Jira's issue events with many fields run to
/// tens of kilobytes; anything far larger is not a webhook.
pub const MAX_BODY: usize = 1024 * 1024;

/// Where a delivery is addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /hooks/jira/{namespace}/{tracker}`: Jira Cloud or Data Center.
    Jira { tracker: String },
    /// `POST /hooks/synchronizers/{namespace}/{name}`: anything else that
    /// knows a synchronizer should pass now (a Redmine plugin, a CI job).
    Synchronizer { id: String },
}

/// Why a delivery is refused, each with the status it answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    NotFound(String),
    #[error("only POST delivers an event")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(String),
    #[error("the body is over {MAX_BODY} bytes; a webhook delivery is far smaller")]
    TooLarge,
    #[error("{0}")]
    BadRequest(String),
    /// This process does not run passes now (a standby replica).
    #[error("{0}")]
    Unavailable(String),
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::NotFound(_) => 404,
            Rejection::MethodNotAllowed => 405,
            Rejection::Unauthorized(_) => 401,
            Rejection::TooLarge => 413,
            Rejection::BadRequest(_) => 400,
            Rejection::Unavailable(_) => 503,
        }
    }

    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::NotFound(_) => "unknown",
            Rejection::MethodNotAllowed => "method",
            Rejection::Unauthorized(_) => "unauthorized",
            Rejection::TooLarge => "too_large",
            Rejection::BadRequest(_) => "bad_request",
            Rejection::Unavailable(_) => "standby",
        }
    }
}

/// The route of `path`; ids are `namespace/name`, as everywhere.
pub fn route(method: &str, path: &str) -> Result<Route, Rejection> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let route = match parts.as_slice() {
        ["hooks", "jira", namespace, name] if valid(namespace) && valid(name) => Route::Jira {
            tracker: format!("{namespace}/{name}"),
        },
        ["hooks", "synchronizers", namespace, name] if valid(namespace) && valid(name) => {
            Route::Synchronizer {
                id: format!("{namespace}/{name}"),
            }
        }
        _ => {
            return Err(Rejection::NotFound(format!(
                "{path} is not a webhook address: POST to /hooks/jira/NAMESPACE/TRACKER or /hooks/synchronizers/NAMESPACE/NAME"
            )));
        }
    };
    if method != "POST" {
        return Err(Rejection::MethodNotAllowed);
    }
    Ok(route)
}

/// A Kubernetes name (a DNS subdomain): nothing that could reach outside
/// the id, such as `..`.
fn valid(segment: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = segment.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes
            .iter()
            .all(|&b| alphanumeric(b) || b == b'-' || b == b'.')
        && alphanumeric(bytes[0])
        && alphanumeric(bytes[bytes.len() - 1])
}

/// What a delivery offers as proof.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proof<'a> {
    /// `X-Hub-Signature: sha256=HEX`, Jira's HMAC-SHA256 of the body.
    pub signature: Option<&'a str>,
    /// `Authorization: Bearer TOKEN`.
    pub bearer: Option<&'a str>,
    /// `?token=TOKEN`, for senders that can set only a URL.
    pub query_token: Option<&'a str>,
}

/// Whether a delivery proves it knows `secret`: a signature when it has
/// one (and then only the signature counts), else a token. Every
/// comparison takes the same time whatever matches.
pub fn authenticate(secret: &[u8], proof: &Proof, body: &[u8]) -> Result<(), Rejection> {
    if let Some(signature) = proof.signature {
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or_else(|| Rejection::Unauthorized("X-Hub-Signature is not `sha256=HEX`".into()))?;
        let given = decode_hex(hex)
            .ok_or_else(|| Rejection::Unauthorized("X-Hub-Signature is not hexadecimal".into()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        return mac.verify_slice(&given).map_err(|_| {
            Rejection::Unauthorized(
                "the signature does not match the body: the webhook's secret is not the tracker's spec.webhook.secret".into(),
            )
        });
    }
    let token = proof.bearer.or(proof.query_token).ok_or_else(|| {
        Rejection::Unauthorized(
            "no proof: sign the delivery with the webhook's secret (X-Hub-Signature) or give it as `Authorization: Bearer` or `?token=`".into(),
        )
    })?;
    if bool::from(token.as_bytes().ct_eq(secret)) {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(
            "the token is not the tracker's spec.webhook.secret".into(),
        ))
    }
}

/// The `token` parameter of a query string, percent-decoded (a secret
/// with `+` or `/` is written `%2B`, `%2F` in a URL).
pub fn query_token(query: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))?;
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let byte = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())?;
                decoded.push(byte);
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The events of Jira's that can change a structure.
const ISSUE_EVENTS: [&str; 5] = [
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "issuelink_created",
    "issuelink_deleted",
];

/// What a Jira delivery says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JiraEvent {
    /// `webhookEvent`, e.g. `jira:issue_updated`.
    pub event: String,
    /// The issue it names, if any (link events name issue ids only).
    pub issues: Vec<String>,
    /// Whether the event can change a structure (issue and link events);
    /// others (comments, worklogs) are answered and dropped.
    pub relevant: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    webhook_event: String,
    #[serde(default)]
    issue: Option<PayloadIssue>,
}

#[derive(Deserialize)]
struct PayloadIssue {
    key: Option<String>,
}

/// Reads a Jira delivery's event and issue key; nothing else is trusted.
pub fn jira_event(body: &[u8]) -> Result<JiraEvent, Rejection> {
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        Rejection::BadRequest(format!(
            "not a Jira webhook delivery (a JSON object with `webhookEvent`): {e}"
        ))
    })?;
    Ok(JiraEvent {
        relevant: ISSUE_EVENTS.contains(&payload.webhook_event.as_str()),
        event: payload.webhook_event,
        issues: payload.issue.and_then(|i| i.key).into_iter().collect(),
    })
}

/// The delivery identifiers seen lately (`X-Atlassian-Webhook-Identifier`,
/// the same across Jira's retries of one delivery): a retried or replayed
/// delivery is answered without another pass.
#[derive(Debug, Default)]
pub struct Replays {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl Replays {
    /// How many identifiers are remembered.
    const KEEP: usize = 10_000;

    /// Whether `identifier` is new; remembers it.
    pub fn first_time(&mut self, identifier: &str) -> bool {
        if self.seen.contains(identifier) {
            return false;
        }
        if self.order.len() == Self::KEEP
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(identifier.to_owned());
        self.seen.insert(identifier.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn routes_name_a_tracker_or_a_synchronizer_and_nothing_else() {
        assert_eq!(
            route("POST", "/hooks/jira/team-a/jira"),
            Ok(Route::Jira {
                tracker: "team-a/jira".into()
            })
        );
        assert_eq!(
            route("POST", "/hooks/synchronizers/default/epics/"),
            Ok(Route::Synchronizer {
                id: "default/epics".into()
            })
        );
        assert_eq!(
            route("GET", "/hooks/jira/a/b"),
            Err(Rejection::MethodNotAllowed)
        );
        for path in [
            "/hooks/jira/a",
            "/hooks/jira/../b",
            "/hooks/jira/A/b",
            "/metrics",
        ] {
            assert_eq!(route("POST", path).unwrap_err().status(), 404, "{path}");
        }
    }

    #[test]
    fn a_signature_must_match_the_body_and_a_token_the_secret() {
        let body = br#"{"webhookEvent":"jira:issue_updated","issue":{"key":"PLAT-1"}}"#;
        let signature = sign(b"s3cret", body);
        let signed = Proof {
            signature: Some(&signature),
            ..Proof::default()
        };
        assert_eq!(authenticate(b"s3cret", &signed, body), Ok(()));
        assert_eq!(
            authenticate(b"other", &signed, body).unwrap_err().status(),
            401
        );
        let tampered = br#"{"webhookEvent":"jira:issue_deleted","issue":{"key":"PLAT-1"}}"#;
        assert!(authenticate(b"s3cret", &signed, tampered).is_err());
        // A signature present decides alone: a right token beside a wrong
        // signature does not pass.
        let wrong = sign(b"other", body);
        let both = Proof {
            signature: Some(&wrong),
            bearer: Some("s3cret"),
            query_token: None,
        };
        assert!(authenticate(b"s3cret", &both, body).is_err());
        let token = Proof {
            query_token: Some("s3cret"),
            ..Proof::default()
        };
        assert_eq!(authenticate(b"s3cret", &token, body), Ok(()));
        let short = Proof {
            bearer: Some("s3cre"),
            ..Proof::default()
        };
        assert!(authenticate(b"s3cret", &short, body).is_err());
        assert!(authenticate(b"s3cret", &Proof::default(), body).is_err());
        let garbled = Proof {
            signature: Some("sha256=zz"),
            ..Proof::default()
        };
        assert!(authenticate(b"s3cret", &garbled, body).is_err());
    }

    #[test]
    fn a_query_token_is_read_percent_decoded() {
        assert_eq!(query_token("a=1&token=s3cret").as_deref(), Some("s3cret"));
        assert_eq!(query_token("token=a%2Bb%2Fc").as_deref(), Some("a+b/c"));
        assert_eq!(query_token("token=a%2"), None);
        assert_eq!(query_token("tokens=x"), None);
    }

    #[test]
    fn jira_events_name_their_issue_and_whether_they_matter() {
        let updated = jira_event(
            br#"{"timestamp":1,"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"PLAT-7","fields":{"summary":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(updated.issues, vec!["PLAT-7".to_owned()]);
        assert!(updated.relevant);
        let link = jira_event(
            br#"{"webhookEvent":"issuelink_created","issueLink":{"sourceIssueId":1,"destinationIssueId":2}}"#,
        )
        .unwrap();
        assert!(link.relevant && link.issues.is_empty());
        let comment = jira_event(br#"{"webhookEvent":"comment_created"}"#).unwrap();
        assert!(!comment.relevant);
        assert_eq!(jira_event(b"not json").unwrap_err().status(), 400);
    }

    #[test]
    fn a_delivery_seen_before_is_recognised() {
        let mut replays = Replays::default();
        assert!(replays.first_time("a"));
        assert!(!replays.first_time("a"));
        assert!(replays.first_time("b"));
    }
}

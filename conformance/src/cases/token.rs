//! Host cases of the pairing token (`spec/02`): the host's tokens are read by the runner's
//! own decoder ([`crate::token_check`]), not by the `tether-proto` decoder it
//! pairs with, so a fault shared by an encoder and a decoder from one code base does not
//! cancel out (`TOKEN-1` to `TOKEN-15`).

use std::sync::Arc;

use tether_proto::link::CloseCode;
use tether_proto::time::UnixTime;

use crate::case::{Case, case};
use crate::cases::steps::devices::pair_fresh;
use crate::cases::steps::handshake::close_is;
use crate::context::Context;
use crate::host::{Identity, Opened, Res, Stop, check, fresh_token, hfail, host_target, paired};
use crate::token_check::{self, RawToken};

/// The token cases, in spec order.
pub const CASES: &[Case] = &[
    TOKEN_LAYOUT,
    TOKEN_VERSION,
    TOKEN_TEXT,
    TOKEN_CHECKSUM,
    TOKEN_FLAGS,
    TOKEN_WORKSPACE,
    TOKEN_URL,
    TOKEN_LIFETIME,
    TOKEN_KEY,
    TOKEN_CONSUMED,
];

// ---------------------------------------------------------------------------------------
// TOKEN

/// The host's token read by the runner's own decoder ([`token_check`]), not by the
/// `tether-proto` decoder the runner pairs with: a fault shared by an encoder and a decoder
/// from one code base does not cancel out. A structural fault fails every `TOKEN-*` case
/// with its spec error name and requirement.
async fn host_token(cx: &Context) -> Res<(Identity, RawToken)> {
    let id = paired(cx).await?.identity;
    match token_check::read(&id.token_text) {
        Ok(raw) => Ok((id, raw)),
        Err(f) => hfail(format!("the host's token is not well-formed: {f}")),
    }
}

const TOKEN_LAYOUT: Case = case! {
    id: "TOKEN-1/canonical-layout",
    level: Must,
    timeout: 30 s,
    description: "the host's token reads by the spec's layout (the runner's own decoder) with the fields the runner paired with",
    host: token_layout,
};
async fn token_layout(cx: Arc<Context>) -> Res<()> {
    let (id, raw) = host_token(&cx).await?;
    // The two readings agree field by field: the layout is unambiguous (TOKEN-1).
    let t = &id.token;
    let fields = [
        ("host key", raw.host_key.as_slice() == t.host_key()),
        ("token id", raw.token_id.as_slice() == t.token_id()),
        (
            "token secret",
            raw.token_secret.as_slice() == t.token_secret(),
        ),
        ("expiry", raw.expires_at == t.expires_at()),
        ("workspace", raw.workspace == t.workspace().as_bytes()),
        ("relay URL", raw.relay_url == t.relay_url().as_bytes()),
        (
            "host name",
            raw.host_name.as_deref() == t.host_name().map(str::as_bytes),
        ),
    ];
    for (what, same) in fields {
        check(same, || {
            format!("the {what} read by the spec's layout differs from the decoded token (TOKEN-1)")
        })?;
    }
    check(t.encode_binary() == raw.binary, || {
        "the token does not re-encode to the bytes the host wrote (TOKEN-1)".to_owned()
    })
}

const TOKEN_VERSION: Case = case! {
    id: "TOKEN-2/version-1",
    level: Must,
    timeout: 30 s,
    description: "the host's token has version byte 0x01",
    host: token_version,
};
async fn token_version(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    check(raw.version == 1, || {
        format!("version byte {:#04x}, expected 0x01", raw.version)
    })
}

const TOKEN_TEXT: Case = case! {
    id: "TOKEN-3/text-form",
    level: Must,
    timeout: 30 s,
    description: "the host's token text is TETHER: and canonical upper-case unpadded base32",
    host: token_text,
};
async fn token_text(cx: Arc<Context>) -> Res<()> {
    let (id, raw) = host_token(&cx).await?;
    let canonical = format!("TETHER:{}", token_check::base32_encode(&raw.binary));
    check(canonical == id.token_text, || {
        "the text is not TETHER: and the canonical base32 of its bytes (TOKEN-3)".to_owned()
    })
}

const TOKEN_CHECKSUM: Case = case! {
    id: "TOKEN-4/checksum",
    level: Must,
    timeout: 30 s,
    description: "the host's token carries the BLAKE2s checksum of its bytes",
    host: token_checksum,
};
async fn token_checksum(cx: Arc<Context>) -> Res<()> {
    // `read` verified the checksum over every byte before it (TOKEN-4); check the stored
    // bytes once more against the label and the body, independently of the read.
    let (_, raw) = host_token(&cx).await?;
    let body = raw
        .binary
        .get(..raw.binary.len().saturating_sub(4))
        .unwrap_or(&[]);
    check(token_check::checksum(body) == raw.checksum, || {
        format!(
            "checksum {} is not BLAKE2s of the label and the token's bytes",
            hex::encode(raw.checksum)
        )
    })
}

const TOKEN_FLAGS: Case = case! {
    id: "TOKEN-6/reserved-flags-zero",
    level: Must,
    timeout: 30 s,
    description: "the host's token has flag bits 1 to 7 clear",
    host: token_flags,
};
async fn token_flags(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    check(raw.flags & 0xfe == 0, || {
        format!("flags byte {:#04x} has reserved bits set", raw.flags)
    })?;
    check((raw.flags & 1 == 1) == raw.host_name.is_some(), || {
        "flag bit 0 disagrees with the presence of a host name".to_owned()
    })
}

const TOKEN_WORKSPACE: Case = case! {
    id: "TOKEN-7/workspace",
    level: Must,
    timeout: 30 s,
    description: "the host's token names a valid workspace, the one the host registered in",
    host: token_workspace,
};
async fn token_workspace(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    let host = host_target(&cx)?;
    if let Some(why) = token_check::workspace_fault(&raw.workspace) {
        return hfail(format!("{why} (TOKEN-7)"));
    }
    check(
        raw.workspace == host.relay.workspace.workspace.as_bytes(),
        || {
            format!(
                "the token names workspace {:?}, the host is reached in {:?}",
                String::from_utf8_lossy(&raw.workspace),
                host.relay.workspace.workspace
            )
        },
    )
}

const TOKEN_URL: Case = case! {
    id: "TOKEN-8/relay-url-and-host-name",
    level: Must,
    timeout: 30 s,
    description: "the host's token has a ws:// or wss:// relay URL and a valid host name",
    host: token_url,
};
async fn token_url(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    if let Some(why) = token_check::relay_url_fault(&raw.relay_url) {
        return hfail(format!("{why} (TOKEN-8)"));
    }
    if let Some(why) = raw
        .host_name
        .as_deref()
        .and_then(token_check::host_name_fault)
    {
        return hfail(format!("{why} (TOKEN-8)"));
    }
    Ok(())
}

const TOKEN_LIFETIME: Case = case! {
    id: "TOKEN-9/lifetime-at-most-600s",
    level: Must,
    timeout: 30 s,
    description: "the host's token expires at most 600 s after it was minted, also when asked for 3600 s",
    host: token_lifetime,
};
async fn token_lifetime(cx: Arc<Context>) -> Res<()> {
    let (id, raw) = host_token(&cx).await?;
    let received = id.received_at.as_secs();
    check(raw.expires_at <= received + 600 + 2, || {
        format!(
            "the token expires {} s after the runner received it; at most 600 s are allowed",
            raw.expires_at.saturating_sub(received)
        )
    })?;
    check(raw.expires_at > received, || {
        format!(
            "the token expired {} s before the runner received it",
            received - raw.expires_at
        )
    })?;
    // Asked for an hour, the host refuses or mints at most 600 s (TOKEN-9).
    let host = host_target(&cx)?;
    if !host.admin.can_set_ttl() {
        return Ok(());
    }
    let asked = UnixTime::now().as_secs();
    match host.admin.mint_token(Some(3600)).await {
        Err(e) => {
            cx.log
                .note("runner", format!("a 3600 s token was refused: {e}"));
            Ok(())
        }
        Ok(None) => Ok(()),
        Ok(Some(text)) => {
            let long = token_check::read(&text).map_err(|f| {
                Stop::Fail(format!(
                    "the token minted for 3600 s is not well-formed: {f}"
                ))
            })?;
            check(long.expires_at <= asked + 600 + 2, || {
                format!(
                    "asked for a 3600 s token, the host minted one that expires {} s later (at most 600 s)",
                    long.expires_at.saturating_sub(asked)
                )
            })
        }
    }
}

const TOKEN_KEY: Case = case! {
    id: "TOKEN-13/key-length",
    level: Must,
    timeout: 30 s,
    description: "the host's token has key length 32 and the key the host handshakes with",
    host: token_key,
};
async fn token_key(cx: Arc<Context>) -> Res<()> {
    // The pairing with this key completed (IK: the host proved it holds the private key),
    // so the key is the one the host handshakes with; here its length byte and bytes.
    let (id, raw) = host_token(&cx).await?;
    check(raw.key_len == 0x20, || {
        format!("key length byte {}, expected 0x20", raw.key_len)
    })?;
    check(raw.host_key == id.host_key(), || {
        "the host key in the token is not the key the runner paired with".to_owned()
    })
}

const TOKEN_CONSUMED: Case = case! {
    id: "TOKEN-15/consumed-token-refused",
    level: Must,
    timeout: 60 s,
    description: "a token that paired once gets CLOSE TOKEN_REJECTED on a second pairing",
    host: token_consumed,
};
async fn token_consumed(cx: Arc<Context>) -> Res<()> {
    paired(&cx).await?;
    let (_, token) = fresh_token(&cx, None).await?;
    let (_, first) = pair_fresh(&cx, &token, "first").await?;
    match first {
        Opened::Established(s) => s.close().await,
        Opened::Refused(code, _) => {
            return hfail(format!(
                "the first pairing with a fresh token got CLOSE {code}"
            ));
        }
    }
    let (_, second) = pair_fresh(&cx, &token, "second").await?;
    let code = second
        .refused("CLOSE TOKEN_REJECTED for a consumed token")
        .await?;
    close_is(
        code,
        CloseCode::TOKEN_REJECTED,
        "second pairing with one token",
    )
}

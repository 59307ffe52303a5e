//! The command-protocol cases (`spec/05-command-protocol.md`): the runner opens sessions
//! with its paired device and sends JSON-RPC, correct and broken, checking the exact
//! answer or error the spec names.
//!
//! | module | sections | requirements |
//! |---|---|---|
//! | [`envelope`] | 5.1, 5.2 | `CMD-1` to `CMD-16` |
//! | [`codex_schema`] | 5.1.4 | `CMD-79` |
//! | [`host_info`] | 5.2 | `CMD-77` |
//! | [`threads`] | 5.3, 5.4 | `CMD-17` to `CMD-26` |
//! | [`approvals`] | 5.5 | `CMD-27` to `CMD-33` |
//! | [`exec`] | 5.6 | `CMD-34` to `CMD-43` |
//! | [`sandbox`] | 5.7 | `CMD-44` to `CMD-46`, `CMD-62` to `CMD-70` |
//! | [`instructions`] | 5.8 | `CMD-48` to `CMD-51` |
//! | [`handoff`] | 5.9 | `CMD-52` to `CMD-54` |
//! | [`control`] | 5.10 | `CMD-55` to `CMD-61` |
//! | [`test_agent`] | 5.11 | `CMD-59` |
//! | [`untrusted_input`] | 5.5, 5.6, 5.8, 5.9 | `CMD-71` to `CMD-75` |

pub mod approvals;
pub mod codex_schema;
pub mod control;
pub mod envelope;
pub mod exec;
pub mod handoff;
pub mod host_info;
pub mod instructions;
pub mod sandbox;
pub mod test_agent;
pub mod threads;
pub mod untrusted_input;

//! The sandbox cases (`spec/05`, section 5.7): the modes themselves ([`modes`]: `CMD-44` to
//! `CMD-46`), and the escapes ([`confinement`], [`containment`]: `CMD-44` for
//! `command/exec`'s roots, `CMD-62` … `CMD-70`), one case per way a hostile command got out of a host's
//! `read-only` or `workspace-write` sandbox. `danger-full-access` has no
//! sandbox and is used only as the control.
//!
//! Each case asks the host, through `command/exec`, to run probe commands under the
//! restricted modes and judges the outcome from outside the sandbox: files the runner
//! inspects itself when it shares the host's file system (else through an unsandboxed
//! `command/exec`), exit codes and output, timing with wide margins, and a Unix socket the
//! runner listens on. Where a probe needs a baseline (which namespaces the host's commands
//! are in, whether the host has a controlling terminal), the same probe runs first under
//! `danger-full-access`.
//!
//! A case is skipped, with the reason, when the host refuses both restricted modes or
//! reports them degraded (nothing enforced to check), when the host lacks a tool the probe
//! needs (`python3` for the socket and terminal probes), or when what it checks is absent
//! on the host (no controlling terminal, a state directory the runner was not told).
//!
//! | escape | case |
//! |---|---|
//! | host processes and namespaces shared | `CMD-62/fresh-namespaces-and-view` |
//! | state directory, keys, credential readable | `CMD-63/state-dir-invisible`, `CMD-63/credential-invisible` |
//! | chmod/chown/utime/setxattr outside the roots | `CMD-64/metadata-writes-refused` |
//! | TIOCSTI into the host's terminal | `CMD-65/no-controlling-terminal` |
//! | capabilities kept, user namespaces | `CMD-66/no-privileges` |
//! | AF_PACKET, netlink, vsock, Unix sockets | `CMD-67/no-sockets` |
//! | `setsid` children outliving the command | `CMD-68/no-survivor-after-exit`, `CMD-68/no-survivor-after-kill`, `CMD-68/no-survivor-after-revocation`, `CMD-68/answer-despite-held-output` |
//! | no process-count limit | `CMD-69/process-limit` |
//! | `.git/hooks` writable | `CMD-70/git-read-only` |
//! | `command/exec` writes its project root, not only `cwd` | `CMD-44/exec-writes-only-cwd` |

pub mod confinement;
pub mod containment;
pub mod modes;

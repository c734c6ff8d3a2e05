//! What this binary is: version and the commit it was built from.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit (12 hex digits), or "unknown" when built outside a checkout.
pub const COMMIT: &str = env!("SENTINEL_PROXY_COMMIT");

/// `--version`'s text: version and commit.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SENTINEL_PROXY_COMMIT"),
    ")"
);

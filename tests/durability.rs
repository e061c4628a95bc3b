//! State the host writes survives `kill -9` at any moment.

//! Provider simulator (placeholder)

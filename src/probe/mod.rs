//! Clients for the kinds of dependency initbox talks to: host:port targets, TLS trust, HTTP,
//! PostgreSQL and Redis.

pub mod http;
pub mod pg;
pub mod resp;
pub mod target;
pub mod tls;

//! Integration tests: the built binary against real listeners, a real DNS server and real
//! signals. One test binary, a module per area.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod wait_dns;
mod wait_tcp;

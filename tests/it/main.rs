//! Integration tests: the built binary against real listeners, a real DNS server and real
//! signals. One test binary, a module per area.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod fetch;
mod fetch_vault;
mod fix_perms;
mod migrate;
mod migrate_formats;
mod render_compat;
mod render_config;
mod tls_self_signed;
mod wait;
mod wait_dns;
mod wait_grpc;
mod wait_http;
mod wait_mysql;
mod wait_pg;
mod wait_redis;
mod wait_tcp;

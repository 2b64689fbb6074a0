//! wait-grpc and grpc:// against real grpcio servers with the standard health service:
//! NOT_SERVING then SERVING, named and unknown services, TLS, and servers without the service.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::grpc::GrpcServer;
use crate::support::postgres::self_signed_cert;
use crate::support::run;
use crate::support::waiting::{run_changed_after, within};

#[test]
fn waits_until_not_serving_turns_to_serving() {
    let mut server = GrpcServer::start(&[("-", "NOT_SERVING")]);
    let target = format!("127.0.0.1:{}", server.port);
    // Still waiting when the status changes, so `elapsed` is past the 800 ms.
    run_changed_after(
        &mut within("30s", &["wait-grpc", &target]),
        Duration::from_millis(800),
        || server.set("-", "SERVING"),
    )
    .expect_code(0)
    .expect_stderr(&format!(
        "grpc://{target}: not ready: health status NOT_SERVING (attempt 1)"
    ));
}

#[test]
fn a_named_service_is_asked_about_not_the_server() {
    let server = GrpcServer::start(&[("-", "NOT_SERVING"), ("orders.v1.Orders", "SERVING")]);
    let by_path = format!("grpc://127.0.0.1:{}/orders.v1.Orders", server.port);
    let by_parameter = format!("grpc://127.0.0.1:{}?service=orders.v1.Orders", server.port);
    run(&mut within("20s", &["wait", &by_path, &by_parameter])).expect_code(0);
    let address = format!("127.0.0.1:{}", server.port);
    let service = ["wait-grpc", "--service", "orders.v1.Orders", &address];
    run(&mut within("20s", &service)).expect_code(0);
    // The server as a whole is not serving.
    let whole = format!("grpc://{address}");
    run(&mut within("700ms", &["wait", &whole])).expect_code(124);
}

#[test]
fn an_unknown_service_is_waited_for_named_and_final_with_fail_fast() {
    let mut server = GrpcServer::start(&[("-", "SERVING")]);
    let uri = format!("grpc://127.0.0.1:{}/billing.v1.Billing", server.port);
    run(&mut within("30s", &["wait", &format!("{uri}?fail_fast")]))
        .expect_failed_at_once("gRPC NOT_FOUND: unknown service 'billing.v1.Billing'");
    // Without fail_fast, a service registered a moment later is seen.
    run_changed_after(
        &mut within("30s", &["wait", &uri]),
        Duration::from_millis(800),
        || server.set("billing.v1.Billing", "SERVING"),
    )
    .expect_code(0)
    .expect_stderr("NOT_FOUND");
}

#[test]
fn tls_servers_are_verified_against_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let server = GrpcServer::start_tls(&cert, &key, &[("-", "SERVING")]);
    let ca = cert.to_str().unwrap();
    let verified = format!("grpcs://localhost:{}?cacert={ca}", server.port);
    run(&mut within("20s", &["wait", &verified])).expect_code(0);
    let address = format!("127.0.0.1:{}", server.port);
    run(&mut within("20s", &["wait-grpc", "--cacert", ca, &address])).expect_code(0);
    let insecure = format!("grpcs://localhost:{}?insecure", server.port);
    run(&mut within("20s", &["wait", &insecure]))
        .expect_code(0)
        .expect_stderr("not verified");

    // The system bundle does not know this certificate; plain text gets no gRPC answer.
    for uri in [
        format!("grpcs://localhost:{}", server.port),
        format!("grpc://localhost:{}", server.port),
    ] {
        run(&mut within("1s", &["wait", &uri]))
            .expect_code(124)
            .expect_last_line(&uri);
    }
}

#[test]
fn a_server_without_the_health_service_fails_at_once() {
    let server = GrpcServer::start_without_health();
    let address = format!("127.0.0.1:{}", server.port);
    run(&mut within("30s", &["wait-grpc", &address]))
        .expect_code(1)
        .expect_stderr("UNIMPLEMENTED");
}

#[test]
fn a_port_that_is_not_grpc_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::thread::spawn(move || {
        // One HTTP/1 answer to whatever comes, as a web server on the wrong port would.
        if let Ok((mut connection, _)) = listener.accept() {
            let _ = connection.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let uri = format!("grpc://127.0.0.1:{port}");
    let result = run(&mut within("1s", &["wait", &uri]));
    result.expect_code(124);
    answer.join().unwrap();
    result.expect_stderr("(is this a gRPC port?)");
}

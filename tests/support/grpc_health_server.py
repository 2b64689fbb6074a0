"""A real gRPC server (grpcio) with the standard health service, for initbox's tests.

Usage: grpc_health_server.py [--tls CERT KEY] [--no-health] [--forever] [SERVICE=STATUS ...]
Prints the port it listens on (127.0.0.1, chosen by the kernel), then reads lines
"SERVICE STATUS" on stdin (SERVICE "-" is the server as a whole; STATUS SERVING or
NOT_SERVING), sets them, and answers "ok" after each. It stops when stdin ends (so a test that
dies leaves no server behind), or with --forever only when killed (for bench/rss).
"""

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    args = sys.argv[1:]
    tls = None
    with_health = True
    forever = False
    statuses = {}
    while args:
        arg = args.pop(0)
        if arg == "--tls":
            tls = (args.pop(0), args.pop(0))
        elif arg == "--no-health":
            with_health = False
        elif arg == "--forever":
            forever = True
        else:
            service, status = arg.split("=")
            statuses[service] = status
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    if with_health:
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for service, status in statuses.items():
        set_status(servicer, service, status)
    if tls:
        cert, key = (open(path, "rb").read() for path in tls)
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    for line in sys.stdin:
        service, status = line.split()
        set_status(servicer, service, status)
        print("ok", flush=True)
    if forever:
        server.wait_for_termination()
    server.stop(0)


def set_status(servicer, service, status):
    name = "" if service == "-" else service
    servicer.set(name, health_pb2.HealthCheckResponse.ServingStatus.Value(status))


if __name__ == "__main__":
    main()

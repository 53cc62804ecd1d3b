#!/usr/bin/env python3
"""moto server whose requests are applied one at a time.

DynamoDB evaluates a condition and applies the write atomically; moto's threaded server
does not (two threads can both pass a condition before either writes), which would let
races that DynamoDB settles slip through our tests. A lock around the backend restores
DynamoDB's semantics while sockets are still served concurrently.

Usage: moto_server.py [-H host] [-p port]
"""
import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    run_simple(args.host, args.port, serialized, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Mint an HS256 JWT for local development: dev-token.py <sub> [name] [ttl-seconds].

Reads the secret from JWT_SECRET. Standard library only, so it works before any venv exists.
"""
import base64, hashlib, hmac, json, os, sys, time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: dev-token.py <sub> [name] [ttl-seconds]")
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        sys.exit("JWT_SECRET is not set")
    sub = sys.argv[1]
    name = sys.argv[2] if len(sys.argv) > 2 else sub
    ttl = int(sys.argv[3]) if len(sys.argv) > 3 else 7 * 24 * 3600
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "name": name, "iat": int(time.time()), "exp": int(time.time()) + ttl}).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = b64(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest())
    print(f"{header}.{claims}.{signature}")


if __name__ == "__main__":
    main()

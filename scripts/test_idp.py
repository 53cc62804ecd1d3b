#!/usr/bin/env python3
"""A tiny OpenID Connect provider for tests and the local stack: RS256 tokens, a JWKS, and
the authorization code flow with PKCE (S256 only), the way Cognito's hosted UI behaves.

It is a stand-in for Cognito so the production sign-in path (RS256 verified against a
JWKS, issuer and audience checked, PKCE in the browser) runs end to end on one machine.
Never expose it: it signs in whoever clicks the button.

Endpoints (issuer = http://127.0.0.1:{port}):
  GET  /.well-known/openid-configuration   discovery
  GET  /.well-known/jwks.json              the public key (kid rotates per process)
  GET  /oauth2/authorize                   a sign-in page; POST it to get a code
  POST /oauth2/token                       authorization_code (PKCE) and refresh_token grants
  GET  /logout                             ends the session, redirects to logout_uri
  POST /test/mint                          tests only: a token with any claims, e.g. expired,
                                           another issuer or audience, or signed by a foreign key

Usage: test_idp.py [-p port] [--client-id ID] [--ttl seconds]
Prints "test-idp listening on http://127.0.0.1:{port}" first, then serves until killed.
"""
import argparse
import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Signer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-" + secrets.token_hex(4)

    def jwk(self) -> dict:
        pub = self.key.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                "n": b64url_uint(pub.n), "e": b64url_uint(pub.e)}

    def sign(self, claims: dict, kid: str | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)


class Idp:
    def __init__(self, issuer: str, client_id: str, ttl: int) -> None:
        self.issuer, self.client_id, self.ttl = issuer, client_id, ttl
        self.signer, self.foreign = Signer(), Signer()
        self.lock = threading.Lock()
        self.codes: dict[str, dict] = {}      # code -> {user, challenge, redirect_uri, nonce, exp}
        self.refresh: dict[str, dict] = {}    # refresh token -> user

    def tokens(self, user: dict, nonce: str | None = None) -> dict:
        now = int(time.time())
        base = {"iss": self.issuer, "sub": user["sub"], "iat": now, "exp": now + self.ttl,
                "auth_time": now}
        id_claims = {**base, "aud": self.client_id, "token_use": "id", "name": user["name"],
                     "cognito:username": user["sub"]}
        if nonce:
            id_claims["nonce"] = nonce
        access_claims = {**base, "client_id": self.client_id, "token_use": "access",
                         "scope": "openid profile email", "username": user["sub"]}
        refresh = secrets.token_urlsafe(32)
        with self.lock:
            self.refresh[refresh] = user
        return {"id_token": self.signer.sign(id_claims),
                "access_token": self.signer.sign(access_claims),
                "refresh_token": refresh, "token_type": "Bearer", "expires_in": self.ttl}


SIGN_IN_PAGE = """<!doctype html><meta charset="utf-8"><title>Test IdP: sign in</title>
<h1>Test identity provider</h1><p>Signs in anyone. For tests and local use only.</p>
<form method="post" action="/oauth2/authorize">{hidden}
<label>User id <input name="username" value="viewer-1" required></label>
<label>Display name <input name="name" value="Viewer One" required></label>
<button type="submit">Sign in</button></form>"""


def make_handler(idp: Idp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def reply(self, status: int, body: dict | str, content_type="application/json",
                  headers: dict | None = None) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.send_header("cache-control", "no-store")
            # The web app calls the token endpoint from its own origin (as with Cognito).
            self.send_header("access-control-allow-origin", "*")
            self.send_header("access-control-allow-headers", "content-type")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()

        def form(self) -> dict:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if self.headers.get("content-type", "").startswith("application/json"):
                return json.loads(raw or "{}")
            return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}

        def error(self, status: int, code: str, description: str) -> None:
            self.reply(status, {"error": code, "error_description": description})

        def do_OPTIONS(self) -> None:
            self.reply(204, "", "text/plain",
                       {"access-control-allow-methods": "GET, POST, OPTIONS"})

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                i = idp.issuer
                return self.reply(200, {
                    "issuer": i, "authorization_endpoint": i + "/oauth2/authorize",
                    "token_endpoint": i + "/oauth2/token", "jwks_uri": i + "/.well-known/jwks.json",
                    "end_session_endpoint": i + "/logout", "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "id_token_signing_alg_values_supported": ["RS256"]})
            if url.path == "/.well-known/jwks.json":
                return self.reply(200, {"keys": [idp.signer.jwk()]})
            if url.path == "/oauth2/authorize":
                problem = self.check_authorize(q)
                if problem:
                    return self.error(400, "invalid_request", problem)
                keep = ("client_id", "redirect_uri", "state", "code_challenge",
                        "code_challenge_method", "nonce", "scope", "response_type")
                hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(q[k])}">'
                                 for k in keep if k in q)
                return self.reply(200, SIGN_IN_PAGE.format(hidden=hidden), "text/html; charset=utf-8")
            if url.path == "/favicon.ico":  # browsers ask; an empty answer keeps consoles clean
                return self.reply(204, "", "image/x-icon")
            if url.path == "/logout":
                target = q.get("logout_uri") or q.get("post_logout_redirect_uri")
                return self.redirect(target) if target else self.reply(200, {"signed_out": True})
            self.error(404, "not_found", url.path)

        def check_authorize(self, q: dict) -> str | None:
            if q.get("response_type") != "code":
                return "response_type must be code"
            if q.get("client_id") != idp.client_id:
                return "unknown client_id"
            if not q.get("redirect_uri", "").startswith(("http://127.0.0.1", "http://localhost")):
                return "redirect_uri must be local"
            if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) < 43:
                return "PKCE with S256 is required"
            return None

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            f = self.form()
            if url.path == "/oauth2/authorize":
                problem = self.check_authorize(f)
                if problem or not f.get("username"):
                    return self.error(400, "invalid_request", problem or "username required")
                code = secrets.token_urlsafe(24)
                with idp.lock:
                    idp.codes[code] = {
                        "user": {"sub": f["username"], "name": f.get("name") or f["username"]},
                        "challenge": f["code_challenge"], "redirect_uri": f["redirect_uri"],
                        "nonce": f.get("nonce"), "exp": time.time() + 60}
                sep = "&" if "?" in f["redirect_uri"] else "?"
                query = urllib.parse.urlencode({"code": code, **({"state": f["state"]} if "state" in f else {})})
                return self.redirect(f["redirect_uri"] + sep + query)
            if url.path == "/oauth2/token":
                return self.token(f)
            if url.path == "/test/mint":
                return self.mint(f)
            self.error(404, "not_found", url.path)

        def token(self, f: dict) -> None:
            if f.get("client_id") != idp.client_id:
                return self.error(400, "invalid_client", "unknown client_id")
            grant = f.get("grant_type")
            if grant == "authorization_code":
                with idp.lock:
                    entry = idp.codes.pop(f.get("code", ""), None)  # a code works once
                if not entry or entry["exp"] < time.time():
                    return self.error(400, "invalid_grant", "unknown, used or expired code")
                if entry["redirect_uri"] != f.get("redirect_uri"):
                    return self.error(400, "invalid_grant", "redirect_uri differs")
                verifier = f.get("code_verifier", "")
                if b64url(hashlib.sha256(verifier.encode()).digest()) != entry["challenge"]:
                    return self.error(400, "invalid_grant", "PKCE verification failed")
                return self.reply(200, idp.tokens(entry["user"], entry["nonce"]))
            if grant == "refresh_token":
                with idp.lock:
                    user = idp.refresh.get(f.get("refresh_token", ""))
                if not user:
                    return self.error(400, "invalid_grant", "unknown refresh token")
                out = idp.tokens(user)
                out.pop("refresh_token")  # Cognito keeps the refresh token
                return self.reply(200, out)
            self.error(400, "unsupported_grant_type", str(grant))

        def mint(self, f: dict) -> None:
            now = int(time.time())
            claims = {"iss": idp.issuer, "aud": idp.client_id, "iat": now, "exp": now + idp.ttl,
                      "sub": "minted", "name": "Minted"}
            claims.update(f.get("claims") or {})
            for k in f.get("drop") or []:
                claims.pop(k, None)
            signer = idp.foreign if f.get("foreign_key") else idp.signer
            # A foreign key signs under the real kid: only the signature gives it away.
            self.reply(200, {"token": signer.sign(claims, kid=idp.signer.kid)})

    return Handler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-p", "--port", type=int, default=0)
    p.add_argument("--client-id", default="rill-web")
    p.add_argument("--ttl", type=int, default=3600, help="token lifetime in seconds")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), None)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = make_handler(Idp(issuer, args.client_id, args.ttl))
    print(f"test-idp listening on {issuer}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

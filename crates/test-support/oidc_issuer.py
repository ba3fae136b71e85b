"""A test OIDC issuer, independent of rotor's JWT code: PyCA `cryptography` (OpenSSL) makes
its keys and certificates and signs its tokens; Python's own ssl serves discovery and JWKS.

  python3 oidc_issuer.py serve DIR   makes DIR/{ca.pem,key-k1.pem,key-other.pem}, serves
                                     https://127.0.0.1:PORT, prints {"issuer": URL} once ready,
                                     counts key-set fetches in DIR/jwks-fetches
  python3 oidc_issuer.py mint DIR SPEC
                                     prints a token: SPEC is JSON {"claims": {...},
                                     "key": "k1" (published) | "other" (not), "alg": "RS256" | "none"}
"""

import base64
import datetime
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n):
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def write_private(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def load_private(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def certificates(directory):
    """A CA and a serving certificate for 127.0.0.1 it signs; the CA goes to ca.pem."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-oidc-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(directory, "tls.pem"), "wb") as f:
        f.write(leaf.public_bytes(pem))
    write_private(os.path.join(directory, "tls.key"), key)


def jwk(kid, key):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": int_b64(numbers.n), "e": int_b64(numbers.e)}


def serve(directory):
    certificates(directory)
    for kid in ("k1", "other"):
        write_private(os.path.join(directory, f"key-{kid}.pem"),
                      rsa.generate_private_key(public_exponent=65537, key_size=2048))
    published = {"keys": [jwk("k1", load_private(os.path.join(directory, "key-k1.pem")))]}
    fetches = os.path.join(directory, "jwks-fetches")
    lock = threading.Lock()
    with open(fetches, "w") as f:
        f.write("0")
    state = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": state["issuer"], "jwks_uri": state["issuer"] + "/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"]}
            elif self.path == "/jwks":
                with lock:
                    with open(fetches) as f:
                        n = int(f.read())
                    with open(fetches, "w") as f:
                        f.write(str(n + 1))
                body = published
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(directory, "tls.pem"), os.path.join(directory, "tls.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state["issuer"] = f"https://127.0.0.1:{server.server_address[1]}"
    print(json.dumps({"issuer": state["issuer"]}), flush=True)
    server.serve_forever()


def mint(directory, spec):
    alg = spec.get("alg", "RS256")
    kid = spec.get("key", "k1")
    header = {"alg": alg, "typ": "JWT"}
    if alg != "none":
        header["kid"] = kid
    message = (b64(json.dumps(header).encode()) + "." +
               b64(json.dumps(spec["claims"]).encode())).encode()
    if alg == "none":
        return message.decode() + "."
    key = load_private(os.path.join(directory, f"key-{kid}.pem"))
    return message.decode() + "." + b64(key.sign(message, padding.PKCS1v15(), hashes.SHA256()))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "mint":
        print(mint(sys.argv[2], json.loads(sys.argv[3])))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")

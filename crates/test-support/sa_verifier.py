"""An independent verifier of rotor's ServiceAccount tokens, as a relying party outside rotor
would be one: it reads the issuer's discovery document and key set from rotor over HTTPS (under
rotor's CA) and checks a token's signature with PyCA `cryptography` (OpenSSL) against the
published keys, then its iss, aud and exp. Nothing of rotor's JWT code is involved.

  python3 sa_verifier.py public KEYFILE
        prints the public key (PEM) of the private key in KEYFILE
  python3 sa_verifier.py verify SERVER CAFILE BEARER TOKEN AUDIENCE
        fetches SERVER/.well-known/openid-configuration (presenting BEARER), then its jwks_uri;
        prints {"claims", "kid", "keys", "configuration", "content_types"} as JSON, or exits
        non-zero saying what failed
"""

import base64
import json
import ssl
import sys
import time
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def integer(s):
    return int.from_bytes(unb64(s), "big")


def get(url, cafile, bearer):
    context = ssl.create_default_context(cafile=cafile)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        return reply.headers.get("Content-Type"), json.load(reply)


def public_key(jwk):
    if jwk["kty"] == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[jwk["crv"]]
        numbers = ec.EllipticCurvePublicNumbers(integer(jwk["x"]), integer(jwk["y"]), curve)
        return numbers.public_key()
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(integer(jwk["e"]), integer(jwk["n"])).public_key()
    sys.exit(f"unsupported key type {jwk['kty']}")


def check_signature(key, alg, signed, signature):
    if alg in ("ES256", "ES384"):
        half = len(signature) // 2
        r, s = (int.from_bytes(part, "big") for part in (signature[:half], signature[half:]))
        digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))
    elif alg == "RS256":
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        sys.exit(f"unsupported alg {alg}")


def verify(server, cafile, bearer, token, audience):
    config_type, config = get(server + "/.well-known/openid-configuration", cafile, bearer)
    jwks_type, jwks = get(config["jwks_uri"], cafile, bearer)
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(unb64(header_b64))
    claims = json.loads(unb64(payload_b64))
    if header["alg"] not in config["id_token_signing_alg_values_supported"]:
        sys.exit(f"alg {header['alg']} is not advertised")
    keys = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    if not keys:
        sys.exit(f"no published key {header.get('kid')}")
    signed = f"{header_b64}.{payload_b64}".encode()
    try:
        check_signature(public_key(keys[0]), header["alg"], signed, unb64(signature_b64))
    except InvalidSignature:
        sys.exit("bad signature")
    if claims["iss"] != config["issuer"]:
        sys.exit("iss is not the issuer")
    if audience not in claims["aud"]:
        sys.exit(f"not for audience {audience}")
    if claims["exp"] < time.time():
        sys.exit("expired")
    print(json.dumps({
        "claims": claims,
        "kid": header["kid"],
        "keys": [k["kid"] for k in jwks["keys"]],
        "configuration": config,
        "content_types": [config_type, jwks_type],
    }))


def public(path):
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    print(pem.decode(), end="")


if __name__ == "__main__":
    if sys.argv[1] == "public":
        public(sys.argv[2])
    elif sys.argv[1] == "verify":
        verify(*sys.argv[2:7])
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")

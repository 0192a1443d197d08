"""Ed25519 signatures over an artifact's digest, in the original product's format.

The signature is Ed25519 over the ASCII bytes of the lowercase hex digest, written as 128
lowercase hex characters, so keys and signatures interoperate with the seed's tooling. A
private key is given as 64 hex characters (the raw 32-byte seed) or as the path of a PEM file
(PKCS#8, unencrypted); public keys travel as 64 hex characters.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aether.errors import ConfigError

_HEX = set("0123456789abcdefABCDEF")


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and set(value) <= _HEX


def load_private_key(spec: str) -> Ed25519PrivateKey:
    """A key from 64 hex chars (raw seed) or a PEM file path; ConfigError when unusable."""
    spec = spec.strip()
    if _is_hex(spec, 64):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(spec))
    path = Path(spec).expanduser()
    if not path.is_file():
        # Never echo the value: it may be a mistyped secret.
        raise ConfigError(
            "AETHER_SIGNING_KEY is neither 64 hex characters (an Ed25519 seed) nor the path "
            "of a PEM key file; create one with `aether keys generate`"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(f"cannot load the signing key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"the signing key in {path} is not an Ed25519 key")
    return key


def public_key_hex(spec: str) -> str:
    """The 64-hex public key that belongs to a private key spec."""
    public = load_private_key(spec).public_key()
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sign_digest(spec: str, digest_hex: str) -> str:
    """128 lowercase hex characters: Ed25519 over the ASCII hex digest."""
    return load_private_key(spec).sign(digest_hex.encode("ascii")).hex()


# RFC 8032's point decoding (section 5.1.3). OpenSSL (through ``cryptography``) accepts any 32
# bytes as a public key and fails only at verification time; a key that cannot verify anything
# would fail every later deploy, so it is refused up front, by the CLI and the API alike.
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def decodes_to_curve_point(public_key: bytes) -> bool:
    if len(public_key) != 32:
        return False
    encoded = int.from_bytes(public_key, "little")
    sign, y = encoded >> 255, encoded & ((1 << 255) - 1)
    if y >= _P:
        return False
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x_squared = u * pow(v, _P - 2, _P) % _P
    if x_squared == 0:
        return sign == 0
    x = pow(x_squared, (_P + 3) // 8, _P)
    if (x * x - x_squared) % _P != 0:
        x = x * _SQRT_M1 % _P
    return (x * x - x_squared) % _P == 0


def is_hex_key(text: object) -> bool:
    """64 hex characters (32 bytes): the shape of a public key, before the curve check."""
    return isinstance(text, str) and _is_hex(text, 64)


def is_valid_public_key(public_key_hex: object) -> bool:
    """True for 64 hex characters that decode to a point on Ed25519."""
    if not is_hex_key(public_key_hex):
        return False
    raw = bytes.fromhex(public_key_hex)  # type: ignore[arg-type]
    if not decodes_to_curve_point(raw):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return False
    return True


def verify_signature(public_key_hex: str, digest_hex: str, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid signature of ``digest_hex`` by the key."""
    if not is_valid_public_key(public_key_hex) or not _is_hex(signature_hex.strip(), 128):
        return False
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    try:
        public.verify(bytes.fromhex(signature_hex.strip()), digest_hex.encode("ascii"))
    except InvalidSignature:
        return False
    return True


def generate_keypair() -> tuple[str, str]:
    """A new key pair as (private seed hex, public key hex)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return seed.hex(), public.hex()

"""Is a 32-byte string an Ed25519 public key? The point must decode onto the curve.

OpenSSL (through ``cryptography``) accepts any 32 bytes as a public key and only fails at
verification time; registering such a key would fail every deploy later, so the API refuses
it up front with RFC 8032's point decoding (section 5.1.3).
"""

from __future__ import annotations

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def is_hex_key(text: object) -> bool:
    if not isinstance(text, str) or len(text) != 64:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


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


def is_valid_public_key(public_key_hex: object) -> bool:
    """64 hex characters that decode to a point on Ed25519 (and that pack accepts too)."""
    if not is_hex_key(public_key_hex):
        return False
    assert isinstance(public_key_hex, str)
    if not decodes_to_curve_point(bytes.fromhex(public_key_hex)):
        return False
    from aether.pack.signing import is_valid_public_key as pack_accepts

    return pack_accepts(public_key_hex)

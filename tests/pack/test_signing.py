"""Ed25519 signatures over the hex digest: the 128-hex format, key forms, round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aether.errors import ConfigError
from aether.pack import (
    PackOptions,
    build_artifact,
    generate_keypair,
    is_valid_public_key,
    load_private_key,
    sign_digest,
    verify_signature,
)
from aether.pack.signing import decodes_to_curve_point, is_hex_key, public_key_hex

DIGEST = "ab" * 32


def test_round_trip_and_format() -> None:
    seed, public = generate_keypair()
    assert re.fullmatch("[0-9a-f]{64}", seed) and re.fullmatch("[0-9a-f]{64}", public)
    signature = sign_digest(seed, DIGEST)
    assert re.fullmatch("[0-9a-f]{128}", signature)
    assert verify_signature(public, DIGEST, signature)
    assert not verify_signature(public, "cd" * 32, signature)
    assert not verify_signature(generate_keypair()[1], DIGEST, signature)
    assert not verify_signature(public, DIGEST, "00" * 64)
    assert not verify_signature(public, DIGEST, "not hex")


def test_signature_is_over_the_ascii_hex_digest() -> None:
    seed, public = generate_keypair()
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    assert sign_digest(seed, DIGEST) == key.sign(DIGEST.encode("ascii")).hex()


def test_pem_key_file(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = public_key_hex(str(pem))
    assert verify_signature(public, DIGEST, sign_digest(str(pem), DIGEST))


@pytest.mark.parametrize("spec", ["abc", "zz" * 32, "/no/such/key.pem"])
def test_unusable_keys_are_config_errors_that_do_not_echo_the_value(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_private_key(spec)
    assert caught.value.exit_code == 10
    assert spec not in caught.value.message


def test_public_key_validation() -> None:
    assert is_valid_public_key(generate_keypair()[1])
    assert not is_valid_public_key("ab" * 31)
    assert not is_valid_public_key("g" * 64)
    assert not is_valid_public_key(123)


def test_off_curve_keys_are_refused_although_openssl_loads_them() -> None:
    assert all(is_valid_public_key(generate_keypair()[1]) for _ in range(20))
    off_curve = (2).to_bytes(32, "little")
    Ed25519PublicKey.from_public_bytes(off_curve)  # OpenSSL takes it; it verifies nothing
    assert not decodes_to_curve_point(off_curve)
    assert not is_valid_public_key(off_curve.hex())
    assert not decodes_to_curve_point(((1 << 255) - 1).to_bytes(32, "little"))  # y >= p
    assert is_hex_key(off_curve.hex()) and not is_hex_key(None)


def test_pack_with_a_key_writes_the_signature(sample: Path) -> None:
    seed, public = generate_keypair()
    result = build_artifact(
        sample, PackOptions(install=False, sbom=False, signing_key=seed), environ={}
    )
    assert result.signature == result.artifact.with_name(result.artifact.name + ".sig")
    text = result.signature.read_text()
    assert re.fullmatch("[0-9a-f]{128}", text) and text == result.signature_hex
    assert verify_signature(public, result.digest, text)
    unsigned = build_artifact(sample, PackOptions(install=False, sbom=False), environ={})
    assert unsigned.signature is None and not result.signature.exists()


def test_a_bad_key_fails_before_packing(sample: Path) -> None:
    with pytest.raises(ConfigError):
        build_artifact(sample, PackOptions(install=False, signing_key="nope"), environ={})
    assert not (sample / ".aether").exists()

"""Sealed config values: AES-GCM boxes bound to app and name, keyed fingerprints, key files."""

from __future__ import annotations

import os
import stat

import pytest

from aether.errors import ConfigError, InternalError, ServiceUnavailable
from aether.sealing import KeyFile, KeyRing, box_key_id, key_id, new_key, parse_key


def test_a_value_opens_only_for_its_app_and_name():
    ring = KeyRing.of(new_key())
    kid = ring.first_key_id
    sealed = ring.seal("s3cret ✓", kid=kid, app_id="a1", name="DB_PASSWORD")
    assert "s3cret" not in sealed["box"] and box_key_id(sealed["box"]) == kid
    assert ring.unseal(sealed, app_id="a1", name="DB_PASSWORD") == "s3cret ✓"
    for app_id, name in (("a2", "DB_PASSWORD"), ("a1", "OTHER")):
        with pytest.raises(InternalError) as caught:
            ring.unseal(sealed, app_id=app_id, name=name)
        assert "s3cret" not in caught.value.message


def test_fingerprints_are_short_keyed_and_tell_changes_apart():
    ring, other = KeyRing.of(new_key()), KeyRing.of(new_key())
    kid = ring.first_key_id
    a = ring.seal("true", kid=kid, app_id="a1", name="DEBUG")["fp"]
    assert len(a) == 8 and a == ring.seal("true", kid=kid, app_id="a1", name="DEBUG")["fp"]
    assert a != ring.seal("false", kid=kid, app_id="a1", name="DEBUG")["fp"]
    assert a != ring.seal("true", kid=kid, app_id="a2", name="DEBUG")["fp"]
    # Without the key nobody can test a guess: another key gives another fingerprint.
    assert a != other.seal("true", kid=other.first_key_id, app_id="a1", name="DEBUG")["fp"]


def test_reseal_moves_a_value_to_another_key_and_keeps_its_fingerprint():
    old, new = new_key(), new_key()
    ring = KeyRing.of(old, new)
    sealed = ring.seal("v", kid=key_id(parse_key(old, where="t")), app_id="a", name="N")
    moved = ring.reseal(sealed, kid=key_id(parse_key(new, where="t")), app_id="a", name="N")
    assert box_key_id(moved["box"]) != box_key_id(sealed["box"]) and moved["fp"] == sealed["fp"]
    assert KeyRing.of(new).unseal(moved, app_id="a", name="N") == "v"


def test_a_key_the_ring_does_not_hold_is_a_clear_service_unavailable():
    ring = KeyRing.of(new_key())
    with pytest.raises(ServiceUnavailable) as caught:
        ring.seal("v", kid="0123456789ab", app_id="a", name="N")
    assert "0123456789ab" in caught.value.message


@pytest.mark.parametrize("bad", ["not base64 !", "c2hvcnQ", ""])
def test_bad_keys_are_config_errors(bad):
    with pytest.raises(ConfigError):
        KeyRing.of(bad) if bad else KeyRing.of(",")


def test_the_key_file_is_created_0600_and_read_again_when_it_gains_a_key(tmp_path):
    path = tmp_path / "data" / "secrets.keys"
    ring = KeyRing(KeyFile(path, create=True))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(ring.key_ids) == 1
    added = new_key()
    KeyFile(path, create=False).add(added)
    kid = key_id(parse_key(added, where="t"))
    assert ring.has(kid)  # the file changed: read again at once, no waiting
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    KeyFile(path, create=False).remove([ring.first_key_id])
    assert KeyRing(KeyFile(path, create=False)).key_ids == {kid}


def test_a_named_key_file_that_is_missing_is_not_invented(tmp_path):
    with pytest.raises(ConfigError) as caught:
        KeyRing(KeyFile(tmp_path / "absent.keys", create=False))
    assert "aether admin new-key" in caught.value.message

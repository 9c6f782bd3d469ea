import sys

import pytest


class TestStrings:
    def test_upper(self):
        assert "medusa".upper() == "MEDUSA"

    def test_split(self):
        assert "a b c".split() == ["a", "b", "c"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_posix_join():
    import posixpath
    assert posixpath.join("a", "b") == "a/b"

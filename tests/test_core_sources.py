"""The source policy, pure: schemes, media roots, denied hosts, credentials split and scrubbed."""

from __future__ import annotations

from core.sources import (
    SourcePolicy,
    check_host,
    check_source,
    check_spool_path,
    redact,
    scrub,
    split_credentials,
    with_credentials,
)

DEFAULT = SourcePolicy()
MEDIA = SourcePolicy(media_roots=("/srv/media",), spool_roots=("/srv/records",))


def test_files_need_a_media_root_and_cannot_climb_out() -> None:
    assert check_source("file:///srv/media/a.mp4", DEFAULT) is not None  # no roots: no files
    assert check_source("file:///srv/media/a.mp4", MEDIA) is None
    assert check_source("/srv/media/sub/b.ts", MEDIA) is None
    assert "'..'" in (check_source("file:///srv/media/../../etc/shadow", MEDIA) or "")
    assert check_source("file:///srv/mediaX/a.mp4", MEDIA) is not None  # a sibling, not a child
    assert check_source("file:///etc/passwd", MEDIA) is not None


def test_loopback_link_local_and_metadata_hosts_are_denied_unless_allowed() -> None:
    for url in ("rtsp://127.0.0.1/x", "rtsp://[::1]/x", "http://169.254.169.254/",
                "rtsp://localhost/x", "rtsp://0.0.0.0/x"):  # fmt: skip
        assert check_source(url, DEFAULT) is not None, url
    assert check_source("rtsp://10.0.0.7/live", DEFAULT) is None  # private networks: cameras
    assert check_source("rtsp://cam.example/live", DEFAULT, ["127.0.0.1"]) is not None  # resolved
    allowed = SourcePolicy(allow_hosts=("127.0.0.0/8", "localhost"))
    assert check_source("rtsp://127.0.0.1/x", allowed) is None
    assert check_host("localhost", [], allowed) is None


def test_an_ipv4_mapped_ipv6_address_is_judged_as_the_ipv4_address_it_reaches() -> None:
    for url in ("rtsp://[::ffff:127.0.0.1]/x", "http://[::ffff:169.254.169.254]/",
                "rtsp://[::ffff:7f00:1]/x"):  # fmt: skip
        assert check_source(url, DEFAULT) is not None, url
    assert check_source("rtsp://[::ffff:10.0.0.7]/live", DEFAULT) is None
    assert check_source("rtsp://cam.example/live", DEFAULT, ["::ffff:127.0.0.1"]) is not None
    assert (
        check_source("rtsp://[::ffff:127.0.0.1]/x", SourcePolicy(allow_hosts=("127.0.0.0/8",)))
        is None
    )


def test_only_configured_schemes() -> None:
    assert "scheme" in (check_source("gopher://cam/x", DEFAULT) or "")
    assert check_source("rtsp://cam.example/x", SourcePolicy(schemes=("http",))) is not None


def test_directory_spools_under_a_spool_root_only() -> None:
    assert check_spool_path("/srv/records/cam-1", MEDIA) is None
    assert check_spool_path("/srv/records/../etc", MEDIA) is not None
    assert check_spool_path("/srv/records/a", DEFAULT) is not None
    assert check_spool_path("relative/dir", MEDIA) is not None


def test_credentials_are_split_off_put_back_redacted_and_scrubbed() -> None:
    url = "rtsp://admin:pa%3Ass@cam.example:554/live?x=1"
    clean, userinfo = split_credentials(url)
    assert clean == "rtsp://cam.example:554/live?x=1" and userinfo == "admin:pa%3Ass"
    assert with_credentials(clean, userinfo) == url
    assert redact(url) == "rtsp://admin:***@cam.example:554/live?x=1"
    assert split_credentials("rtsp://cam.example/x") == ("rtsp://cam.example/x", None)
    message = f"Connection refused: '{url}' (admin:pa%3Ass)"
    assert "pa%3Ass" not in scrub(message, url)

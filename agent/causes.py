"""Why a camera could not be read, in words an operator acts on.

FFmpeg's errors are terse and sometimes misleading (a host name that does not resolve reads
``Input/output error`` over RTSP), so the cause is decided from the error, its code and
whether the source's host resolves at all::

    dns        the host name does not resolve          → check the name, the DNS server
    refused    nothing listens at that address/port    → the camera is off, or the port is wrong
    timeout    no answer in time                       → a firewall drops packets, the camera hangs
    auth       the camera refused the credentials      → fix user:password in the source URL
    not_found  no such path on the camera / no file    → fix the path of the URL
    unreachable no route to the camera's network
    stalled    connected, but frames stopped coming
    lost       the connection dropped while streaming
    error      anything else (the message says what)
"""

from __future__ import annotations

__all__ = ["CAUSES", "cause_of"]

CAUSES = {
    "dns": "the camera's host name does not resolve",
    "refused": "nothing listens at the camera's address and port",
    "timeout": "the camera did not answer in time",
    "auth": "the camera refused the credentials",
    "not_found": "no such stream path or file",
    "unreachable": "no route to the camera's network",
    "stalled": "connected, but no frame came within the stall deadline",
    "lost": "the connection dropped while streaming",
    "error": "the source could not be read",
}

_MATCH = (
    ("dns", ("name or service not known", "temporary failure in name resolution",
             "nodename nor servname", "no address associated", "could not resolve",
             "name resolution")),
    ("refused", ("connection refused", "errno 111")),
    ("timeout", ("timed out", "timeout", "no answer within", "errno 110")),
    ("auth", ("401", "unauthorized", "403", "forbidden", "authorization failed",
              "authentication")),
    ("not_found", ("404", "not found", "no such file")),
    ("unreachable", ("network is unreachable", "no route to host", "errno 113", "errno 101")),
    ("lost", ("connection reset", "broken pipe", "end of file", "source ended")),
)  # fmt: skip


def cause_of(message: str, code: str = "", *, resolves: bool | None = None) -> str:
    """The cause (a key of `CAUSES`) of a source failure. ``resolves`` is whether the source's
    host name resolves (None: not checked, or not a network source)."""
    if resolves is False:
        return "dns"
    if code == "stream_stalled":
        return "stalled"
    text = message.lower()
    for cause, needles in _MATCH:
        if any(n in text for n in needles):
            return cause
    if code == "source_not_found":
        return "not_found"
    return "error"

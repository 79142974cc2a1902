"""Which sources and spools a stream may name: a policy, and pure checks against it.

Checked by managers at create (with what they can resolve) and by agents again before they open
anything (their own policy, their own DNS: a name may resolve differently where the camera is).

- **Schemes**: only the configured ones (``rtsp``, ``http``... by default).
- **Files**: ``file://`` (or an absolute path) only under a configured media root, after
  normalising the path (``..`` cannot climb out); no media root, no files.
- **Hosts**: never a denied address (loopback, link-local, cloud metadata, "this" network by
  default) unless allowed explicitly (an address, a network in CIDR, or a host name). Private
  networks are *not* denied: that is where cameras live.
- **Directory spools**: only under a configured spool root, normalised the same way.
- **Credentials** in a URL (``rtsp://user:pass@cam/x``) are split off (``split_credentials``)
  and kept apart from the event log; ``redact`` is what every view, log line and export shows.

The checks never look at the file system or the network: they cannot tell anyone whether a
path exists or a port is open.
"""

from __future__ import annotations

import functools
import ipaddress
import posixpath
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec

__all__ = [
    "DEFAULT_DENY",
    "DEFAULT_SCHEMES",
    "SourcePolicy",
    "check_host",
    "check_path",
    "check_source",
    "check_spool_path",
    "literal_address",
    "local_path",
    "redact",
    "scrub",
    "split_credentials",
    "with_credentials",
]

DEFAULT_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "tcp", "udp", "file")
DEFAULT_DENY = (
    "127.0.0.0/8", "::1/128",           # loopback: the agent's own host and its services
    "169.254.0.0/16", "fe80::/10",      # link-local, with cloud metadata at 169.254.169.254
    "0.0.0.0/8", "::/128",              # "this host"
    "100.100.100.200/32",               # Alibaba Cloud metadata
    "fd00:ec2::254/128",                # AWS metadata over IPv6
    "localhost", "metadata.google.internal",
)  # fmt: skip


class SourcePolicy(msgspec.Struct, frozen=True, kw_only=True):
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    media_roots: tuple[str, ...] = ()
    """Directories ``file://`` sources may be under (none: no file sources)."""
    spool_roots: tuple[str, ...] = ()
    """Directories a ``directory`` spool may be under (none: no directory spools)."""
    deny_hosts: tuple[str, ...] = DEFAULT_DENY
    allow_hosts: tuple[str, ...] = ()
    """Exceptions to ``deny_hosts``: addresses, CIDR networks or host names."""


def local_path(url: str) -> str | None:
    """The path of a ``file://`` URL or an absolute path; None for network URLs."""
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        return unquote(parts.path)
    return None


def _under(path: str, roots: Iterable[str]) -> bool:
    norm = posixpath.normpath(path)
    for root in roots:
        base = posixpath.normpath(root)
        if norm == base or norm.startswith(base.rstrip("/") + "/"):
            return True
    return False


def check_path(path: str, roots: tuple[str, ...], what: str = "file sources") -> str | None:
    """Why ``path`` is refused (None if allowed): absolute, no ``..``, under a root."""
    if not path.startswith("/"):
        return f"{what} need an absolute path"
    if ".." in path.split("/"):
        return f"{what} may not climb with '..'"
    if not roots:
        return f"{what} are not allowed here (no roots are configured)"
    if not _under(path, roots):
        return f"{what} must be under {', '.join(roots)}"
    return None


def check_spool_path(path: str, policy: SourcePolicy) -> str | None:
    return check_path(path, policy.spool_roots, "directory spools")


Net = tuple[int, int, int]
"""A network as (IP version, network address as int, netmask as int)."""


@functools.lru_cache(maxsize=64)
def _networks(entries: tuple[str, ...]) -> tuple[tuple[Net, ...], frozenset[str]]:
    """The networks and names of an allow/deny list, parsed once per list (every create checks
    its source against them)."""
    nets: list[Net] = []
    names: set[str] = set()
    for entry in entries:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            names.add(entry.lower().rstrip("."))
        else:
            nets.append((net.version, int(net.network_address), int(net.netmask)))
    return tuple(nets), frozenset(names)


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> tuple[int, int, str] | None:
    """``text`` as (version, int, normalised text) if it is an IP address (``[::1]``,
    ``fe80::1%eth0``, ``10.0.0.7``), else None; an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``)
    is matched as the IPv4 address it reaches. Cached: a camera's address is checked on every
    create and again on every start."""
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if mapped is not None:
        return 4, int(mapped), str(ip)
    return ip.version, int(ip), str(ip)


def _in(ip: tuple[int, int, str], nets: tuple[Net, ...]) -> bool:
    version, value, _ = ip
    return any(v == version and value & mask == net for v, net, mask in nets)


def literal_address(host: str) -> str | None:
    """``host`` as a normalised IP address if it is one (``[::1]``, ``10.0.0.7``), else None."""
    ip = _ip(host)
    return ip[2] if ip is not None else None


def check_host(host: str, addresses: Iterable[str], policy: SourcePolicy) -> str | None:
    """Why ``host`` (resolved to ``addresses``; a literal address resolves to itself) is
    refused, or None. An allowed name or address wins over a denied one."""
    host = host.lower().rstrip(".").strip("[]")
    allow_nets, allow_names = _networks(tuple(policy.allow_hosts))
    deny_nets, deny_names = _networks(tuple(policy.deny_hosts))
    if host in allow_names:
        return None
    if host in deny_names:
        return f"host {host} is not allowed (denied; an operator may allow it)"
    candidates = {host, *addresses}
    for raw in candidates:
        ip = _ip(raw)
        if ip is None or _in(ip, allow_nets):
            continue
        if _in(ip, deny_nets):
            return f"host {host} is not allowed (a denied address; an operator may allow it)"
    return None


def check_source(url: str, policy: SourcePolicy, addresses: Iterable[str] = ()) -> str | None:
    """Why a stream source is refused (None if allowed) — scheme, path and host."""
    path = local_path(url)
    scheme = "file" if path is not None else urlsplit(url).scheme.lower()
    if scheme not in policy.schemes:
        return f"scheme {scheme or '(none)'!r} is not allowed; allowed: {', '.join(policy.schemes)}"
    if path is not None:
        return check_path(path, policy.media_roots)
    host = urlsplit(url).hostname
    if not host:
        return f"{scheme}:// source needs a host"
    return check_host(host, addresses, policy)


def split_credentials(url: str) -> tuple[str, str | None]:
    """(the URL without its user info, the ``user[:password]`` it carried or None)."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, userinfo


def with_credentials(url: str, userinfo: str | None) -> str:
    """The URL to open: ``url`` with ``userinfo`` put back."""
    if not userinfo:
        return url
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{userinfo}@{hostport}", parts.path, parts.query,
                       parts.fragment))  # fmt: skip


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for views, logs, exports)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{hostport}", parts.path, parts.query,
                       parts.fragment))  # fmt: skip


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the credentials of ``url`` masked wherever they
    appear — decoders quote the URL they failed to open."""
    _, userinfo = split_credentials(url)
    if not userinfo:
        return text
    text = text.replace(url, redact(url))
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    text = text.replace(userinfo, "***")
    return text.replace(password, "***") if password else text

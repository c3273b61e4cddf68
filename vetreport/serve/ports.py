"""Choosing a free local port for a server this project starts (SeaweedFS, Prefect, tests).

What belongs here: picking a port nobody listens on, from a range where only a listener
can take it between the choice and the bind.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST_CHOSEN_PORT = 20000


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, below the system's ephemeral range.

    A port the kernel hands out for binding to port 0 comes from the range it also uses
    for the source ports of outgoing connections: one of those can take it before the
    server binds it (seen with SeaweedFS's eight ports and three test processes starting
    at once). Below that range only a listener can. It may still be taken before it is
    used: ``start_seaweedfs`` then chooses again.
    """
    low = ephemeral_range_start()
    if low is not None and low > LOWEST_CHOSEN_PORT:
        for _ in range(50):
            port = random.randrange(LOWEST_CHOSEN_PORT, low)
            if port_is_free(host, port):
                return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def ephemeral_range_start() -> int | None:
    """The first port of the kernel's ephemeral range (Linux), or None where unknown."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None


def port_is_free(host: str, port: int) -> bool:
    """Whether a listener could bind the port on host now."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True

# Copyright (c) mmuol contributors. All rights reserved.
"""Failing fast when a weights hub cannot be reached (host-free)."""
import contextlib
import os
import socket
from typing import Iterator, Optional
from urllib.parse import urlparse

__all__ = ['hf_endpoint', 'hub_reachable', 'hf_hub_offline']


def hf_endpoint() -> str:
    """The Hugging Face hub address (``HF_ENDPOINT`` or the public hub)."""
    return os.environ.get('HF_ENDPOINT', 'https://huggingface.co')


def hub_reachable(endpoint: Optional[str] = None) -> bool:
    """Whether a hub's host name resolves.

    ``huggingface_hub`` retries an unreachable host for ~25 s per file before
    giving up; resolving the name first takes milliseconds.

    Args:
        endpoint (str, optional): URL or host name; defaults to
            :func:`hf_endpoint`.

    Returns:
        bool: True if the host name resolves.
    """
    endpoint = endpoint or hf_endpoint()
    host = urlparse(endpoint).hostname or endpoint
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def hf_hub_offline(offline: bool = True) -> Iterator[None]:
    """Run ``huggingface_hub`` downloads in offline mode (cache only).

    ``huggingface_hub`` reads ``constants.HF_HUB_OFFLINE`` at call time, so a
    file already in the local cache still loads and a missing one fails at
    once instead of after the network retries.
    """
    if not offline:
        yield
        return
    try:
        from huggingface_hub import constants
    except ImportError:  # no hub client: nothing to switch
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved

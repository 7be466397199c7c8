"""Print pip's option for an extra package index if it answers, else nothing (and one line on stderr why).

Usage: python tools/index_reachable.py URL [OPTION]   (OPTION: --extra-index-url, the default)

`make install` asks this before its torch step: pip retries every page of an index that does not answer five
times (77 s of warnings per install where its name does not resolve, minutes where packets are dropped), so an
index that is not reachable within a few seconds is left out with one clear line instead. Standard library only:
it runs in the bare venv, before anything is installed. Proxies in the environment are honoured as pip honours
them; the certificate is not checked here (pip checks it when it downloads).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from urllib.parse import urlparse

TIMEOUT_S = 5.0


def reachable(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """(whether ``url`` answers within ``timeout`` seconds, why not). Any HTTP answer counts as reachable."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return (os.path.isdir(parsed.path), f"{parsed.path} is not a directory")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ssl._create_unverified_context()):
            return True, ""
    except urllib.error.HTTPError:
        return True, ""  # the server answered (403/404...): pip will say more than we can
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, a malformed URL
        reason = getattr(exc, "reason", exc)
        return False, f"{type(reason).__name__}: {reason}"


def main(argv: list[str]) -> int:
    url = argv[1].strip() if len(argv) > 1 else ""
    option = argv[2] if len(argv) > 2 else "--extra-index-url"
    if not url:
        print("TORCH_INDEX is empty: torch comes from pip's usual indexes", file=sys.stderr)
        return 0
    ok, why = reachable(url)
    if ok:
        print(f"torch index: {url}", file=sys.stderr)
        print(f"{option} {url}")
    else:
        print(
            f"TORCH_INDEX {url} is not reachable in {TIMEOUT_S:.0f} s ({why}); torch comes from pip's usual "
            "indexes instead (a local wheel cache, or PyPI: the CUDA build on Linux, ~3 GB). "
            "Set TORCH_INDEX to a reachable index, or empty it to skip this check.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""HEALTHCHECK of the service images: GET /health (or another path) on the ops port.

Usage: observatory-healthcheck PORT_VARIABLE DEFAULT_PORT [PATH]. The port is read from the
same variable the service reads, so a container whose port was changed stays checked.
Exit 0 when the answer is 200, else 1 with the reason on stderr (shown by docker inspect).
"""

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    variable, default = argv[1], argv[2]
    path = argv[3] if len(argv) > 3 else "/health"
    url = f"http://127.0.0.1:{os.environ.get(variable) or default}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

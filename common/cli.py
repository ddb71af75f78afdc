"""Entry-point wrapper: a settings error is one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from common.settings import SettingsError


def run_service(main: Callable[[], None]) -> None:
    try:
        main()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass

"""Exit codes: 0 success, 1 a failure (the message says what to do), 2 a usage error."""


class Failure(Exception):
    exit_code = 1


class UsageError(Failure):
    exit_code = 2

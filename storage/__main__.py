from common.cli import run_service
from storage.app import main as _main


def main() -> None:
    run_service(_main)


if __name__ == "__main__":
    main()

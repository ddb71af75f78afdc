from api.app import main as _main
from common.cli import run_service


def main() -> None:
    run_service(_main)


if __name__ == "__main__":
    main()

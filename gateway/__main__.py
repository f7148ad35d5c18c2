"""`python -m gateway store.yaml` (gateway layer): run one store process until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from edge.errors import EdgeError
from gateway.config import StoreConfig
from gateway.errors import GatewayError
from gateway.runtime import run_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description="Run a StoreGuard store gateway.")
    parser.add_argument("config", help="the store's YAML file")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = StoreConfig.load(args.config)
        asyncio.run(run_store(config))
    except (GatewayError, EdgeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

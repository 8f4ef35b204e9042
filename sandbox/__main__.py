"""Command line of the sandbox.

``python -m sandbox serve [--host H] [--afas-port N] [--topdesk-port N] [--oh-port N] [--seed S] [--scale N]
[--latency-ms N] [--fault-rate F] [--afas-auth-mode classic|hybrid|oauth] [--afas-token-lifetime S]``
serves the three simulators, prints ONE JSON line (URLs, credentials,
control URLs and the ``KOPPEL_*`` env block) and runs until SIGINT/SIGTERM.

``python -m sandbox world [--seed S] [--scale N]`` prints one JSON line: rows per frame and the fingerprint.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sandbox.knobs import Knobs
from sandbox.world import DEFAULT_SCALE, DEFAULT_SEED, generate_world

if TYPE_CHECKING:
    from sandbox.server import System


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve AFAS, TOPdesk and the OH simulator on loopback")
    serve.add_argument("--host", default="127.0.0.1")
    for system in ("afas", "topdesk", "oh"):
        serve.add_argument(f"--{system}-port", type=int, default=0, help="0 = a free port")
    serve.add_argument("--latency-ms", type=int, default=0, help="added to every request of all three")
    serve.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given a fault")
    serve.add_argument(
        "--afas-auth-mode",
        choices=("classic", "hybrid", "oauth"),
        default="classic",
        help="AFAS app connector: classic token only, hybrid, or OAuth only",
    )
    serve.add_argument("--afas-token-lifetime", type=int, default=3600, help="expires_in of OAuth tokens")
    world = commands.add_parser("world", help="print a one-line summary of the generated world")
    for sub in (serve, world):
        sub.add_argument("--seed", type=int, default=DEFAULT_SEED)
        sub.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="registrations per month")
    return parser


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):  # a bare wait() would not wake for the signal handler on every platform
        pass


def serve(args: argparse.Namespace) -> None:
    """Run the sandbox until a signal arrives."""
    from sandbox.afas.state import AfasOptions
    from sandbox.server import running_sandbox

    knobs = Knobs(seed=args.seed, latency_ms=args.latency_ms, fault_rate=args.fault_rate)
    ports: dict[System, int] = {"afas": args.afas_port, "topdesk": args.topdesk_port, "oh": args.oh_port}
    with running_sandbox(
        seed=args.seed,
        scale=args.scale,
        host=args.host,
        ports=ports,
        afas_knobs=knobs,
        topdesk_knobs=knobs,
        oh_knobs=knobs,
        options={"afas": AfasOptions(auth_mode=args.afas_auth_mode, token_lifetime=args.afas_token_lifetime)},
    ) as sandbox:
        _emit(sandbox.describe())
        _wait_for_signal()


def world_summary(args: argparse.Namespace) -> None:
    """Print rows per frame and the fingerprint of a generated world."""
    world = generate_world(seed=args.seed, scale=args.scale)
    frames = {name: len(frame) for name, frame in world.frames().items()}
    _emit({"seed": world.seed, "scale": world.scale, "fingerprint": world.fingerprint(), "frames": frames})


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m sandbox``."""
    args = _parser().parse_args(argv)
    {"serve": serve, "world": world_summary}[args.command](args)


if __name__ == "__main__":
    main()

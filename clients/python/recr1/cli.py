"""The `recr1` command: talk to recr1d from the shell."""

import argparse
import json
import sys

from google.protobuf import json_format

from recr1.client import PolicyClient
from recr1.errors import RecR1Error


def _print(message):
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), indent=2))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="recr1", description="Client of recr1d.")
    parser.add_argument("--address", help="recr1d's address (default: $RECR1_ADDRESS or the default ipc socket)")
    parser.add_argument("--token-file", help="file with the shared token, when recr1d requires one")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="what recr1d runs: model, BLAS core, limits")
    commands.add_parser("health", help="serving status, uptime, request counts")
    args = parser.parse_args(argv)

    try:
        with PolicyClient(args.address, timeout=args.timeout, token_file=args.token_file) as client:
            _print(getattr(client, args.command)())
    except RecR1Error as exc:
        print(f"recr1: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

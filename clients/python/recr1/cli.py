"""The `recr1` command: talk to recr1d from the shell."""

import argparse
import json
import sys

from google.protobuf import json_format

from recr1 import extras
from recr1.client import PolicyClient
from recr1.data import cli as data_cli
from recr1.errors import RecR1Error
from recr1.recipes import cli as recipes_cli
from recr1.v1 import policy_pb2


def _print(message):
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), indent=2))


def _reward(plugin_args):
    from recr1 import rewards  # the BM25 plugins need bm25s and numpy; only this command loads them
    if not plugin_args or plugin_args[0] in ("-h", "--help"):
        print("usage: recr1 reward NAME ADDRESS [options]   (NAME: " + ", ".join(rewards.PLUGINS) + "; "
              "`recr1 reward NAME --help` for the options)")
        return 0 if plugin_args else 2
    return rewards.plugin_main(plugin_args[0], plugin_args[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="recr1", description="Client of recr1d.")
    parser.add_argument("--address", help="recr1d's address (default: $RECR1_ADDRESS or the default ipc socket)")
    parser.add_argument("--token-file", help="file with the shared token, when recr1d requires one")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="what recr1d runs: model, BLAS core, limits")
    commands.add_parser("health", help="serving status, uptime, request counts")
    tokenize = commands.add_parser("tokenize", help="token ids of texts")
    tokenize.add_argument("texts", nargs="+")
    generate = commands.add_parser("generate", help="sample completions of prompts")
    generate.add_argument("prompts", nargs="+")
    generate.add_argument("--chat", action="store_true", help="each prompt is a user message (chat template applied)")
    generate.add_argument("-n", type=int, default=1, help="samples per prompt")
    generate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    data_cli.add_commands(commands)
    recipes_cli.add_commands(commands)
    reward = commands.add_parser("reward", add_help=False,
                                 help="run a reward plugin: rec_r1, reczero, rlrf4rec (--help after the name)")
    reward.add_argument("plugin_args", nargs=argparse.REMAINDER, help="NAME ADDRESS [options]")
    args, extra = parser.parse_known_args(argv)
    if args.command == "reward":  # everything after "reward" is the plugin's (its --help included)
        return _reward(extra + args.plugin_args)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "data":
        return data_cli.run(args)
    absent = extras.missing() if args.command in ("run", "eval", "probe") else []
    if absent:
        print(f"recr1 {args.command}: needs {', '.join(absent)}: {extras.INSTALL}", file=sys.stderr)
        return 2
    if args.command == "run":
        return recipes_cli.run_command(args)
    if args.command == "eval":
        return recipes_cli.eval_command(args)
    if args.command == "probe":
        return recipes_cli.probe_command(args)

    try:
        with PolicyClient(args.address, timeout=args.timeout, token_file=args.token_file) as client:
            if args.command == "tokenize":
                print(json.dumps(client.tokenize(args.texts)))
            elif args.command == "generate":
                prompts = [[{"role": "user", "content": p}] if args.chat else p for p in args.prompts]
                reply = client.generate(prompts, n=args.n, temperature=args.temperature, top_p=args.top_p,
                                        top_k=args.top_k, seed=args.seed, max_new_tokens=args.max_new_tokens)
                if args.json:
                    _print(reply)
                else:
                    for prompt, result in zip(args.prompts, reply.results):
                        for completion in result.completions:
                            reason = policy_pb2.FinishReason.Name(completion.finish_reason)
                            print(f"{prompt!r} -> {completion.text!r} ({len(completion.token_ids)} tokens, {reason})")
            else:
                _print(getattr(client, args.command)())
    except RecR1Error as exc:
        print(f"recr1: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

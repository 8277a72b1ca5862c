"""The `lightdl` command.

    lightdl fit|validate|test|predict --config configs/X.yaml [--section.key value ...]
                                      training and evaluation (LightningCLI, lightdl/train_cli.py)
    lightdl info                      versions, backend, where the native kernels run
    lightdl data describe ...         class balance, lengths and example plots of a data set
"""

from __future__ import annotations

import os
import sys

USAGE = """usage: lightdl <command> [args]

commands:
  fit              train a model described by a config (then test its best checkpoint)
  validate         evaluate a checkpoint on the validation split
  test             evaluate a checkpoint on the test split
  predict          write predictions.csv for the test split
  bench ops        time kernels against PyTorch eager, torch.compile and the vendor library
  bench train      training speed of a config with fused vs torch.nn layers
  info             versions, the active backend, and which devices run the native kernels
  data describe    summarise a data set (class balance, lengths) and plot examples per class

options:
  -h, --help       this message
  --version        lightdl's version

`lightdl <command> --help` for a command's options, e.g.
  lightdl fit --config configs/digits_cnn.yaml --trainer.max_epochs 5
"""

TRAIN_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    """Run a command; a user error (bad argument, missing or malformed file) prints one line
    and exits 2. LIGHTDL_DEBUG=1 shows the traceback instead."""
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except (ValueError, TypeError, OSError, KeyError) as exc:  # DataError is a ValueError
        if os.environ.get("LIGHTDL_DEBUG") == "1":
            raise
        print(f"lightdl: error: {exc}", file=sys.stderr)
        return 2


def _run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        from lightdl._version import __version__

        print(f"lightdl {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command in TRAIN_COMMANDS:
        from lightdl.train_cli import main as train_main

        return train_main(args)
    if command == "bench":
        from lightdl.bench.cli import main as bench_main

        return bench_main(rest)
    if command == "info":
        if rest and rest[0] in ("-h", "--help"):
            print("usage: lightdl info\n\nPrints versions, the backend and the devices of lightdl's kernels.")
            return 0
        from lightdl.info import main as info_main

        return info_main()
    if command == "data":
        if not rest or rest[0] != "describe":
            print("usage: lightdl data describe [args]  (lightdl data describe --help)", file=sys.stderr)
            return 2
        from lightdl.data.describe import main as describe_main

        return describe_main(rest[1:])
    print(f"lightdl: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

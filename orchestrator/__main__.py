import sys

if sys.argv[1:2] == ["serve"]:
    # Hold SIGTERM/SIGINT before anything else is imported (cli.main reuses this latch).
    from .signals import SignalLatch

    SignalLatch.install()

from .cli import main  # noqa: E402 — after the latch on purpose

raise SystemExit(main())

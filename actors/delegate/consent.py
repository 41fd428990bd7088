"""The blast radius a user consents to, and its fingerprint (sans-IO).

Consent is per workspace and binds to the exact radius: which command line runs, in which
directory, which files it may change, which test command judges it. Any change to one of those
(e.g. ``allow`` widened in workspace.yaml — which ``run_command`` could write) no longer matches
the stored fingerprint, so delegation is off again until the user consents to the new radius.
"""
from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence

from attrs import asdict, frozen

from actors.delegate.config import DelegateConfig

CONSENT_COMMAND = "orchestrator delegate consent --workspace {workspace}"


@frozen
class BlastRadius:
    agent: str                       # the cli model id
    command: tuple[str, ...]         # its argv as the daemon starts it (the prompt goes on stdin)
    directory: str                   # the workspace: the process's working directory
    allow: tuple[str, ...]           # the files it may change (globs, relative to the directory)
    test_command: str                # what the daemon re-runs before accepting a result

    def fingerprint(self) -> str:
        data = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()

    def as_json(self) -> dict[str, object]:
        return {"agent": self.agent, "command": list(self.command), "directory": self.directory,
                "allow": list(self.allow), "test_command": self.test_command, "fingerprint": self.fingerprint()}

    def describe(self) -> list[str]:
        return [
            f"agent:        {self.agent}",
            f"command line: {shlex.join(self.command)}  (the task on stdin; it keeps the daemon's environment)",
            f"directory:    {self.directory}",
            f"may change:   {', '.join(self.allow)}  (never .orchestrator/ or .git/)",
            f"verified by:  {self.test_command}",
            "It never owns git: a moved HEAD, a file outside that list, a file it does not report or a failing",
            "test rolls back exactly what it changed, and the task goes back to the session model.",
        ]


def blast_radius(config: DelegateConfig, command: Sequence[str], workspace: str) -> BlastRadius:
    return BlastRadius(config.agent, tuple(command), workspace, config.allow, config.test_command)


def consent_hint(workspace: str) -> str:
    return CONSENT_COMMAND.format(workspace=shlex.quote(workspace))

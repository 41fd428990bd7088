"""Delegation state in the state database: consent, breaker, escalation (portable SQL only)."""
from __future__ import annotations

import json
import time

from attrs import frozen

from actors.delegate.breaker import BreakerState, TaskState
from actors.delegate.consent import BlastRadius
from actors.runtime.store import Store


@frozen
class Consent:
    workspace: str
    fingerprint: str
    radius: dict[str, object]
    granted_at: float


def get_consent(store: Store, workspace: str) -> Consent | None:
    rows = store._query("SELECT workspace, fingerprint, radius, granted_at FROM delegate_consents WHERE workspace=?",
                        (workspace,))
    if not rows:
        return None
    r = rows[0]
    return Consent(r[0], r[1], json.loads(r[2]), float(r[3]))


def grant_consent(store: Store, radius: BlastRadius) -> None:
    store._write(
        "INSERT INTO delegate_consents (workspace, fingerprint, radius, granted_at) VALUES (?,?,?,?) "
        "ON CONFLICT (workspace) DO UPDATE SET fingerprint=excluded.fingerprint, radius=excluded.radius, "
        "granted_at=excluded.granted_at",
        (radius.directory, radius.fingerprint(), json.dumps(radius.as_json()), time.time()), None)


def revoke_consent(store: Store, workspace: str) -> bool:
    had = get_consent(store, workspace) is not None
    store._write("DELETE FROM delegate_consents WHERE workspace=?", (workspace,), None)
    return had


def get_breaker(store: Store, session_id: str) -> BreakerState:
    rows = store._query("SELECT failures, open_reason FROM delegate_breakers WHERE session_id=?", (session_id,))
    return BreakerState(int(rows[0][0]), rows[0][1]) if rows else BreakerState()


def put_breaker(store: Store, session_id: str, state: BreakerState) -> None:
    store._write(
        "INSERT INTO delegate_breakers (session_id, failures, open_reason, updated_at) VALUES (?,?,?,?) "
        "ON CONFLICT (session_id) DO UPDATE SET failures=excluded.failures, open_reason=excluded.open_reason, "
        "updated_at=excluded.updated_at",
        (session_id, state.failures, state.open_reason, time.time()), None)


def get_task(store: Store, session_id: str, task_id: str) -> TaskState:
    rows = store._query("SELECT needs_work, escalated FROM delegate_tasks WHERE session_id=? AND task_id=?",
                        (session_id, task_id))
    return TaskState(int(rows[0][0]), rows[0][1]) if rows else TaskState()


def put_task(store: Store, session_id: str, task_id: str, state: TaskState) -> None:
    store._write(
        "INSERT INTO delegate_tasks (session_id, task_id, needs_work, escalated, updated_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT (session_id, task_id) DO UPDATE SET needs_work=excluded.needs_work, "
        "escalated=excluded.escalated, updated_at=excluded.updated_at",
        (session_id, task_id, state.needs_work, state.escalated, time.time()), None)


def escalated_tasks(store: Store, session_id: str) -> dict[str, str]:
    """task id → why it is no longer delegated, for the session's escalated tasks."""
    rows = store._query("SELECT task_id, escalated FROM delegate_tasks WHERE session_id=? AND escalated IS NOT NULL "
                        "ORDER BY task_id", (session_id,))
    return {r[0]: r[1] for r in rows}

"""Who may do what on head office's pages, enforced on the server for every route.

=================  =========  ========  =============  =======
permission         hr_admin   hr_staff  plant_manager  auditor
=================  =========  ========  =============  =======
view (read)        all        all       own plant      all
case.ack           yes        yes       own plant      —
case.call          yes        yes       own plant      —
case.act (gates,   yes        yes       —              —
resolve, welfare,
service, upload)
hr.edit (leave,    yes        yes       —              —
import)
policy.publish     yes        —         —              —
accounts.admin     yes        —         —              —
evidence.export    yes        yes       —              yes
=================  =========  ========  =============  =======

A plant manager sees only their own plant (``Account.plant``): a page of another plant's case or
employee answers 404, as if it did not exist, and lists are filtered in the query.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, current_app, request, session

from cloud import audit
from cloud.clock import SystemClock, to_ms
from cloud.web.auth import login_required

PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"hr_admin", "hr_staff", "plant_manager", "auditor"}),
    "case.ack": frozenset({"hr_admin", "hr_staff", "plant_manager"}),
    "case.call": frozenset({"hr_admin", "hr_staff", "plant_manager"}),
    "case.act": frozenset({"hr_admin", "hr_staff"}),
    "hr.edit": frozenset({"hr_admin", "hr_staff"}),
    "policy.publish": frozenset({"hr_admin"}),
    "accounts.admin": frozenset({"hr_admin"}),
    "evidence.export": frozenset({"hr_admin", "hr_staff", "auditor"}),
}


def role() -> str:
    return str(session.get("role", ""))


def can(permission: str) -> bool:
    return role() in PERMISSIONS[permission]


def own_plant() -> str | None:
    """The plant a plant manager is limited to; None for head-office roles (every plant)."""
    return str(session.get("plant", "")) if role() == "plant_manager" else None


def check_plant(plant_id: str) -> None:
    """404 for a plant outside the user's scope: another plant's records do not exist for them."""
    mine = own_plant()
    if mine is not None and plant_id != mine:
        abort(404)


def require(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not can(permission):
                if request.method == "POST":
                    note("refused", action=f"{request.endpoint}", target=request.path)
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapped)

    return decorate


def now_ms() -> int:
    """The app's clock (tests set ``app.config["CLOCK"]``), in epoch milliseconds UTC."""
    return to_ms(current_app.config.get("CLOCK", SystemClock()).now())


def note(outcome: str, /, *, action: str, target: str, **detail: Any) -> None:
    """Audit what the signed-in user did (or tried), with the address it came from."""
    audit.record(
        at_ms=now_ms(),
        username=str(session.get("user", "")),
        role=role(),
        address=request.remote_addr or "",
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
    )

"""Thresholds API (thresholds domain, HTTP): thin routes, the request owns the transaction.

Read: thresholds.read (dispatchers, supervisors, regional managers, facilities, admins).
Change: thresholds.edit (facilities, admins). A change answers 201 with the new chain-wide
version, or 200 with `created: false` when it changes nothing.

    GET|PUT|PATCH|DELETE /thresholds/models/{model}                        model scope
    GET|PUT|PATCH|DELETE /thresholds/stores/{store_id}/models/{model}      store scope
    GET|PUT|PATCH|DELETE /thresholds/stores/{store_id}/devices/{device_id} device scope
    POST /thresholds/changes    a change given as {op, target, reason, rules}
    POST /thresholds/dry-run    the same body: what it would do, nothing written
    GET  /thresholds/changes, /thresholds/changes/{version}   the history
    GET  /thresholds/rollout    per store: desired version, applied state, counts
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from central.auth.models import User
from central.auth.permissions import Permission, require
from central.deps import RuntimeDep, SessionDep
from central.thresholds import rollout as rollout_service
from central.thresholds import service
from central.thresholds.models import ThresholdChange
from central.thresholds.plan import Edit
from central.thresholds.resolve import Target
from central.thresholds.schemas import (
    ApplyRead,
    ChangeBody,
    ChangeRead,
    ChangeSummary,
    DryRunRead,
    Op,
    Reason,
    RolloutRead,
    RolloutState,
    RulesBody,
    ScopeRead,
    StoreVersionRead,
    TargetBody,
)
from protocols.mqtt.messages import Identifier

router = APIRouter(prefix="/thresholds", tags=["thresholds"])
Reader = Annotated[User, Depends(require(Permission.THRESHOLDS_READ))]
Editor = Annotated[User, Depends(require(Permission.THRESHOLDS_EDIT))]
ReasonQuery = Annotated[Reason, Query(description="why (kept in the change history)")]
RuleQuery = Annotated[list[Identifier] | None, Query(description="only these rule codes (default: all)")]
MODEL = "/models/{model}"
STORE = "/stores/{store_id}/models/{model}"
DEVICE = "/stores/{store_id}/devices/{device_id}"


def change_read(change: ThresholdChange) -> ChangeRead:
    return ChangeRead.model_validate({
        "version": change.version, "author": change.author, "created_at": change.created_at,
        "reason": change.reason, "request": change.request, "diff": change.diff,
        "stores": [StoreVersionRead.model_validate(s) for s in change.stores]})


def _target(body: TargetBody) -> Target:
    return Target(body.scope, model=body.model or "", store_id=body.store_id or "", device_id=body.device_id or "")


def _apply(edit: Edit, reason: str, response: Response, session: SessionDep, runtime: RuntimeDep,
           user: User) -> ApplyRead:
    request: dict[str, Any] = {
        "op": edit.op.value, "scope": edit.target.scope.value, "target": edit.target.label,
        "rules": {c: (p.model_dump(mode="json", exclude_unset=True) if p is not None else None)
                  for c, p in edit.rules.items()}}
    change = service.apply(session=session, edit=edit, request=request, author=user.username, reason=reason,
                           now=runtime.clock.now(), profiles=runtime.profiles)
    read = ApplyRead(created=change is not None, change=change_read(change) if change is not None else None)
    session.commit()
    response.status_code = 201 if change is not None else 200
    return read


def _read(target: Target, session: SessionDep, runtime: RuntimeDep) -> ScopeRead:
    return service.read_scope(session=session, target=target, profiles=runtime.profiles)


# --- model scope ---

@router.get(MODEL, response_model=ScopeRead)
def get_model(model: str, session: SessionDep, runtime: RuntimeDep, _user: Reader) -> ScopeRead:
    return _read(Target.of_model(model), session, runtime)


@router.put(MODEL, response_model=ApplyRead)
def put_model(model: str, body: RulesBody, response: Response, session: SessionDep, runtime: RuntimeDep,
              user: Editor) -> ApplyRead:
    return _apply(Edit(Target.of_model(model), Op.PUT, body.rules), body.reason, response, session, runtime, user)


@router.patch(MODEL, response_model=ApplyRead)
def patch_model(model: str, body: RulesBody, response: Response, session: SessionDep, runtime: RuntimeDep,
                user: Editor) -> ApplyRead:
    return _apply(Edit(Target.of_model(model), Op.PATCH, body.rules), body.reason, response, session, runtime, user)


@router.delete(MODEL, response_model=ApplyRead)
def delete_model(model: str, reason: ReasonQuery, response: Response, session: SessionDep, runtime: RuntimeDep,
                 user: Editor, rule: RuleQuery = None) -> ApplyRead:
    edit = Edit(Target.of_model(model), Op.DELETE, dict.fromkeys(rule or ()))
    return _apply(edit, reason, response, session, runtime, user)


# --- store scope (one model within one store) ---

@router.get(STORE, response_model=ScopeRead)
def get_store_model(store_id: str, model: str, session: SessionDep, runtime: RuntimeDep,
                    _user: Reader) -> ScopeRead:
    return _read(Target.of_store(store_id, model), session, runtime)


@router.put(STORE, response_model=ApplyRead)
def put_store_model(store_id: str, model: str, body: RulesBody, response: Response, session: SessionDep,
                    runtime: RuntimeDep, user: Editor) -> ApplyRead:
    edit = Edit(Target.of_store(store_id, model), Op.PUT, body.rules)
    return _apply(edit, body.reason, response, session, runtime, user)


@router.patch(STORE, response_model=ApplyRead)
def patch_store_model(store_id: str, model: str, body: RulesBody, response: Response, session: SessionDep,
                      runtime: RuntimeDep, user: Editor) -> ApplyRead:
    edit = Edit(Target.of_store(store_id, model), Op.PATCH, body.rules)
    return _apply(edit, body.reason, response, session, runtime, user)


@router.delete(STORE, response_model=ApplyRead)
def delete_store_model(store_id: str, model: str, reason: ReasonQuery, response: Response, session: SessionDep,
                       runtime: RuntimeDep, user: Editor, rule: RuleQuery = None) -> ApplyRead:
    edit = Edit(Target.of_store(store_id, model), Op.DELETE, dict.fromkeys(rule or ()))
    return _apply(edit, reason, response, session, runtime, user)


# --- device scope ---

@router.get(DEVICE, response_model=ScopeRead)
def get_device(store_id: str, device_id: str, session: SessionDep, runtime: RuntimeDep,
               _user: Reader) -> ScopeRead:
    return _read(Target.of_device(store_id, device_id), session, runtime)


@router.put(DEVICE, response_model=ApplyRead)
def put_device(store_id: str, device_id: str, body: RulesBody, response: Response, session: SessionDep,
               runtime: RuntimeDep, user: Editor) -> ApplyRead:
    edit = Edit(Target.of_device(store_id, device_id), Op.PUT, body.rules)
    return _apply(edit, body.reason, response, session, runtime, user)


@router.patch(DEVICE, response_model=ApplyRead)
def patch_device(store_id: str, device_id: str, body: RulesBody, response: Response, session: SessionDep,
                 runtime: RuntimeDep, user: Editor) -> ApplyRead:
    edit = Edit(Target.of_device(store_id, device_id), Op.PATCH, body.rules)
    return _apply(edit, body.reason, response, session, runtime, user)


@router.delete(DEVICE, response_model=ApplyRead)
def delete_device(store_id: str, device_id: str, reason: ReasonQuery, response: Response, session: SessionDep,
                  runtime: RuntimeDep, user: Editor, rule: RuleQuery = None) -> ApplyRead:
    edit = Edit(Target.of_device(store_id, device_id), Op.DELETE, dict.fromkeys(rule or ()))
    return _apply(edit, reason, response, session, runtime, user)


# --- changes, dry run, rollout ---

@router.post("/changes", response_model=ApplyRead)
def post_change(body: ChangeBody, response: Response, session: SessionDep, runtime: RuntimeDep,
                user: Editor) -> ApplyRead:
    return _apply(Edit(_target(body.target), body.op, body.rules), body.reason, response, session, runtime, user)


@router.post("/dry-run", response_model=DryRunRead)
def dry_run(body: ChangeBody, session: SessionDep, runtime: RuntimeDep, _user: Editor) -> DryRunRead:
    planned = service.dry_run(session=session, edit=Edit(_target(body.target), body.op, body.rules),
                              profiles=runtime.profiles)
    session.rollback()  # nothing of a dry run is kept
    return DryRunRead(valid=not planned.problems, problems=planned.problems, diff=planned.diff,
                      stores=planned.impacts, devices_affected=sum(len(s.devices) for s in planned.impacts),
                      store_versions=sum(1 for s in planned.impacts if s.new_version))


@router.get("/changes", response_model=list[ChangeSummary])
def list_changes(session: SessionDep, _user: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 before: Annotated[int | None, Query(ge=1, description="versions below this one")] = None,
                 ) -> list[ChangeSummary]:
    return [ChangeSummary(version=c.version, author=c.author, created_at=c.created_at, reason=c.reason,
                          fields_changed=len(c.diff), stores_issued=len(c.stores))
            for c in service.changes(session=session, limit=limit, before=before)]


@router.get("/changes/{version}", response_model=ChangeRead)
def get_change(version: int, session: SessionDep, _user: Reader) -> ChangeRead:
    return change_read(service.get_change(session=session, version=version))


@router.get("/rollout", response_model=RolloutRead)
def get_rollout(session: SessionDep, _user: Reader, state: RolloutState | None = None,
                region: str | None = None) -> RolloutRead:
    return rollout_service.rollout(session=session, region=region, state=state)


"""Work templates API and service (tickets domain): the store work a repair spawns, as data.

    GET /work-templates              signed in
    PUT /work-templates/{name}       admins (Permission.SLA_EDIT): create or replace
    DELETE /work-templates/{name}    admins

A template's tasks are spawned for repairs opened after the change (`central.tickets.links`);
open tickets keep the tasks they have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from central.auth.models import User
from central.auth.permissions import Permission, require
from central.deps import CurrentUser, RuntimeDep, SessionDep
from central.errors import NotFoundError
from central.tickets.models import WorkTemplate
from protocols.mqtt.messages import FaultClass

router = APIRouter(tags=["work templates"])
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,47}$")]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$")]
Editor = Annotated[User, Depends(require(Permission.SLA_EDIT))]


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code  # the child's fault code is "<repair's fault code>.<code>"
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] = ""
    requires_record: bool = False  # done only with a note (e.g. what was discarded)


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, Field(max_length=2000)] = ""
    fault_class: FaultClass | None = None  # None: any
    device_kind: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")] | None = None
    fault_codes: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]],
                           Field(max_length=100)] = Field(default_factory=list)
    tasks: Annotated[list[TaskSpec], Field(min_length=1, max_length=20)]
    enabled: bool = True

    @field_validator("tasks")
    @classmethod
    def _unique_codes(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        codes = [t.code for t in tasks]
        if len(codes) != len(set(codes)):
            raise ValueError(f"task codes must be unique: {sorted({c for c in codes if codes.count(c) > 1})}")
        return tasks


class TemplateRead(TemplateBody):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    name: str
    updated_at: datetime
    updated_by: str | None


def _read(template: WorkTemplate) -> TemplateRead:
    return TemplateRead(name=template.name, description=template.description, fault_class=template.fault_class,
                        device_kind=template.device_kind, fault_codes=list(template.fault_codes),
                        tasks=[TaskSpec.model_validate(t) for t in template.tasks], enabled=template.enabled,
                        updated_at=template.updated_at, updated_by=template.updated_by)


@router.get("/work-templates", response_model=list[TemplateRead])
def list_templates(session: SessionDep, _user: CurrentUser) -> list[TemplateRead]:
    return [_read(t) for t in session.scalars(select(WorkTemplate).order_by(WorkTemplate.name))]


@router.put("/work-templates/{name}", response_model=TemplateRead)
def put_template(name: Name, body: TemplateBody, response: Response, session: SessionDep, runtime: RuntimeDep,
                 user: Editor) -> TemplateRead:
    template = session.scalar(select(WorkTemplate).where(WorkTemplate.name == name).with_for_update())
    if template is None:
        template = WorkTemplate(name=name)
        session.add(template)
        response.status_code = 201
    template.description, template.fault_class, template.device_kind = body.description, body.fault_class, \
        body.device_kind
    template.fault_codes = list(body.fault_codes)
    template.tasks = [t.model_dump() for t in body.tasks]
    template.enabled, template.updated_at, template.updated_by = body.enabled, runtime.clock.now(), user.username
    session.commit()
    return _read(template)


@router.delete("/work-templates/{name}", status_code=204)
def delete_template(name: str, session: SessionDep, _user: Editor) -> None:
    template = session.scalar(select(WorkTemplate).where(WorkTemplate.name == name))
    if template is None:
        raise NotFoundError(f"no work template {name!r}")
    session.delete(template)
    session.commit()

"""Technicians (technicians domain: ORM model and HTTP schema)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from central.auth.models import User
from central.db import Base


class Technician(Base):
    __tablename__ = "technicians"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    skills: Mapped[list[str]]  # e.g. ["refrigeration", "self_checkout"]
    region: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(default=True)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def display_name(self) -> str:
        return self.user.display_name


class TechnicianRead(BaseModel):
    id: int
    username: str
    display_name: str
    skills: list[str]
    region: str
    active: bool
    open_tickets: int

"""Request and response models for accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from juxing.kit.schemas import StrictModel
from juxing.models.accounts import Role

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    ),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Locale = Annotated[str, StringConstraints(pattern=r"^(en|zh-CN)$")]


class RegisterIn(StrictModel):
    email: Email
    password: Password
    display_name: DisplayName
    locale: Locale = "en"


class LoginIn(StrictModel):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TokenLoginIn(LoginIn):
    name: DisplayName = "api"
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    locale: str
    is_active: bool
    roles: list[Role]
    created_at: datetime


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str


class MeUpdate(StrictModel):
    display_name: DisplayName | None = None
    locale: Locale | None = None


class UserCreate(RegisterIn):
    roles: list[Role] = Field(default_factory=lambda: [Role.SHOPPER], min_length=1)


class UserAdminUpdate(StrictModel):
    roles: list[Role] | None = Field(default=None, min_length=1)
    is_active: bool | None = None


class TokenCreate(StrictModel):
    name: DisplayName
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored.")

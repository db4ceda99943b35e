"""ORM models, one module per aggregate. Importing this package registers every table."""

from juxing.models.accounts import ApiToken, Role, User, UserRole
from juxing.models.base import Base
from juxing.models.kit import IdempotencyRecord

__all__ = ["ApiToken", "Base", "IdempotencyRecord", "Role", "User", "UserRole"]

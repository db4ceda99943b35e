"""ORM models, one module per aggregate. Importing this package registers every table."""

import juxing.models.catalog  # issue 3: deals
import juxing.models.deals  # issue 3: deals
import juxing.models.orders  # issue 3: deals
from juxing.models.accounts import ApiToken, Role, User, UserRole
from juxing.models.base import Base
from juxing.models.kit import IdempotencyRecord

__all__ = ["ApiToken", "Base", "IdempotencyRecord", "Role", "User", "UserRole"]

"""ORM models, one module per aggregate. Importing this package registers every table."""

import juxing.models.analytics  # issue 7: marketplace
import juxing.models.catalog  # issue 3: deals
import juxing.models.commission  # issue 6: commission
import juxing.models.content  # issue 4: content
import juxing.models.deals  # issue 3: deals
import juxing.models.events  # issue 5: feed
import juxing.models.feed  # issue 5: feed
import juxing.models.ledger  # issue 6: commission
import juxing.models.marketplace  # issue 7: marketplace
import juxing.models.orders  # issue 3: deals
import juxing.models.refund_requests  # issue 3: shoppers' refund requests
import juxing.models.search  # noqa: F401  (issue 4: search)
from juxing.models.accounts import ApiToken, Role, User, UserRole
from juxing.models.base import Base
from juxing.models.kit import IdempotencyRecord

__all__ = ["ApiToken", "Base", "IdempotencyRecord", "Role", "User", "UserRole"]

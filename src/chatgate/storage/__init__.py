"""Storage: SQLAlchemy 2 async engine, ORM tables, repositories and Alembic migrations."""

from chatgate.storage.db import DEFAULT_URL, Database, normalize_url
from chatgate.storage.keys import KeyRepository
from chatgate.storage.migrate import current_revision, head_revision, upgrade
from chatgate.storage.models import ANONYMOUS, NO_USER, ClientKey, UsageDaily
from chatgate.storage.models_chat import Conversation, Message, User, UserSession
from chatgate.storage.models_files import FileChunk, FilePart, MessageFile, StoredFile
from chatgate.storage.models_responses import StoredResponse
from chatgate.storage.responses import ResponseRepository
from chatgate.storage.usage import KeyTotals, UsageRepository, UsageRow, UserTotals

__all__ = [
    "ANONYMOUS",
    "DEFAULT_URL",
    "NO_USER",
    "ClientKey",
    "Conversation",
    "Database",
    "FileChunk",
    "FilePart",
    "KeyRepository",
    "KeyTotals",
    "Message",
    "MessageFile",
    "ResponseRepository",
    "StoredFile",
    "StoredResponse",
    "UsageDaily",
    "UsageRepository",
    "UsageRow",
    "User",
    "UserSession",
    "UserTotals",
    "current_revision",
    "head_revision",
    "normalize_url",
    "upgrade",
]

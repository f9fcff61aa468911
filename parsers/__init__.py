"""Raw message bytes to one normalized, immutable message. Pure: no I/O."""

from .message import Address, Attachment, FaxInfo, ParsedMessage, ParseError
from .parse import parse_message

__all__ = ["Address", "Attachment", "FaxInfo", "ParsedMessage", "ParseError", "parse_message"]

"""The shape of the dict ``Pipeline.record_cadf`` takes: a CADF event (DMTF Cloud Auditing
Data Federation, as sapcc ``audittools`` publishes it for Hermes), keys spelled as on the
wire. Plain ``TypedDict`` classes, for type checkers; at run time an event is any dict.

    audit.record_cadf({
        "action": "create",
        "outcome": "success",
        "initiator": {"typeURI": "service/security/account/user", "id": "u-1", "name": "ada"},
        "target": {"typeURI": "compute/server", "id": "s-1"},
        "observer": {"typeURI": "service/compute", "id": "nova-api-01"},
        "reason": {"reasonType": "HTTP", "reasonCode": "201"},
        "requestPath": "/v2.1/servers",
    })

``None`` is the same as leaving a key out.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Literal, Optional, Tuple, TypedDict, Union

__all__ = [
    "CadfAddress",
    "CadfAttachment",
    "CadfContent",
    "CadfEvent",
    "CadfHost",
    "CadfReason",
    "CadfResource",
]

CadfContent = Union[str, bytes, Dict[str, Any], List[Any], Tuple[Any, ...]]
"""An attachment's ``content``: a ``str`` is sent as a JSON string (what Hermes reads),
``bytes`` are JSON text sent as written, a dict, list or tuple is encoded as JSON."""


class _AddressRequired(TypedDict):
    url: str


class CadfAddress(_AddressRequired, total=False):
    """One of a resource's ``addresses``."""

    name: Optional[str]


class CadfHost(TypedDict, total=False):
    """A resource's ``host``."""

    id: Optional[str]
    address: Optional[str]
    agent: Optional[str]
    platform: Optional[str]


class _AttachmentRequired(TypedDict):
    typeURI: str
    content: CadfContent


class CadfAttachment(_AttachmentRequired, total=False):
    """One of the ``attachments`` of an event or a resource."""

    name: Optional[str]


class _ResourceRequired(TypedDict):
    typeURI: str
    id: str


class CadfResource(_ResourceRequired, total=False):
    """The ``initiator``, ``target`` or ``observer`` of an event."""

    name: Optional[str]
    domain: Optional[str]
    addresses: Optional[Union[List[CadfAddress], Tuple[CadfAddress, ...]]]
    host: Optional[CadfHost]
    attachments: Optional[Union[List[CadfAttachment], Tuple[CadfAttachment, ...]]]
    project_id: Optional[str]
    domain_id: Optional[str]
    project_name: Optional[str]
    project_domain_name: Optional[str]
    domain_name: Optional[str]
    app_credential_id: Optional[str]


class CadfReason(TypedDict, total=False):
    """An event's ``reason``, e.g. the HTTP status."""

    reasonType: Optional[str]
    reasonCode: Optional[str]


class _EventRequired(TypedDict):
    action: str
    outcome: Literal["success", "failure", "pending", "unknown"]
    initiator: CadfResource
    target: CadfResource
    observer: CadfResource


class CadfEvent(_EventRequired, total=False):
    """A CADF event. Left out: ``typeURI`` is the CADF event schema, ``id`` a new random
    UUID (version 4), ``eventTime`` the time of the call (``2026-11-30T10:15:30.123456+00:00``;
    a ``datetime`` given is written in UTC), ``eventType`` ``"activity"``."""

    typeURI: Optional[str]
    id: Optional[str]
    eventTime: Optional[Union[str, datetime.datetime]]
    eventType: Optional[Literal["activity", "monitor", "control"]]
    reason: Optional[CadfReason]
    attachments: Optional[Union[List[CadfAttachment], Tuple[CadfAttachment, ...]]]
    requestPath: Optional[str]

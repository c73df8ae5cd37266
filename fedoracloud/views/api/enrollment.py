"""The enrollment API: the CA certificate and CRL, nodes enrolling and polling (no login:
they hold a token or a poll secret), and admins approving or rejecting hosts."""

from __future__ import annotations

from typing import Any

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ...permissions import Permission
from ...pki import CaError
from ...request import FcRequest
from ...resources import HostContext
from ...services import InvalidInput, ServiceError
from ...services.enrollment import (
    BadToken,
    CaUnavailable,
    IEnrollmentService,
    host_certificate,
)
from ...services.pools import IPoolService
from ...services.throttle import IThrottleService, count_failure
from .. import authorized_pool
from ..errors import error_body
from . import int_field, json_body, str_field
from .hosts import host_detail_json

#: an enrollment body is a CSR and facts with at most 64 NICs: far below this
MAX_BODY = 512 * 1024
POLL_SECRET_HEADER = "X-Enrollment-Secret"  # noqa: S105 - a header name


def _refusal(request: FcRequest, exc: ServiceError) -> dict[str, Any]:
    request.response.status = exc.status
    if "retry_after" in exc.details:
        request.response.headers["Retry-After"] = str(exc.details["retry_after"])
    return error_body(exc.code, exc.message, exc.details)


@view_config(
    route_name="api_ca_pem",
    request_method="GET",
    renderer="json",
    permission=NO_PERMISSION_REQUIRED,
)
def ca_pem(request: FcRequest) -> Any:
    """The CA certificate (PEM), public: nodes fetch it and check its fingerprint."""
    try:
        pem = request.find_service(IEnrollmentService).ca.certificate_pem()
    except CaError as exc:
        return _refusal(request, CaUnavailable(str(exc)))
    return Response(pem, content_type="application/x-pem-file", charset="utf-8")


@view_config(
    route_name="api_ca_crl",
    request_method="GET",
    renderer="json",
    permission=NO_PERMISSION_REQUIRED,
)
def ca_crl(request: FcRequest) -> Any:
    """The CA's certificate revocation list (PEM), signed now."""
    try:
        pem = request.find_service(IEnrollmentService).crl_pem()
    except ServiceError as exc:
        return _refusal(request, exc)
    return Response(pem, content_type="application/pkix-crl", charset="utf-8")


@view_config(
    route_name="api_enroll",
    request_method="POST",
    renderer="json",
    permission=NO_PERMISSION_REQUIRED,
    require_csrf=False,
)
def enroll(request: FcRequest) -> dict[str, Any]:
    """A node enrolls with its token, CSR and facts; answers 202 with the poll URL and secret.
    A refusal changes nothing but the per-address count of attempts: the service checks
    everything before it writes, so the attempt is committed and nothing else."""
    service = request.find_service(IEnrollmentService)
    addr = request.client_addr or ""
    try:
        service.note_attempt(addr)
        request.find_service(IThrottleService).check()
        if (request.content_length or 0) > MAX_BODY:
            raise InvalidInput(f"the request is larger than {MAX_BODY // 1024} KiB")
        enrollment, secret = service.enroll(json_body(request), addr)
    except BadToken as exc:
        count_failure(request, "enroll")
        return _refusal(request, exc)
    except ServiceError as exc:
        return _refusal(request, exc)
    request.response.status = 202
    return {
        "id": enrollment.id,
        "state": enrollment.state,
        "secret": secret,
        "poll_url": request.route_url("api_enrollment", enrollment_id=enrollment.id),
        "poll_header": POLL_SECRET_HEADER,
    }


@view_config(
    route_name="api_enrollment",
    request_method="GET",
    renderer="json",
    permission=NO_PERMISSION_REQUIRED,
)
def poll(request: FcRequest) -> dict[str, Any]:
    """A node asks how its enrollment stands (with the secret in ``X-Enrollment-Secret``);
    once approved the answer carries its certificate and the CA's."""
    service = request.find_service(IEnrollmentService)
    try:
        enrollment = service.poll(
            request.matchdict["enrollment_id"], request.headers.get(POLL_SECRET_HEADER, "")
        )
    except ServiceError as exc:
        return _refusal(request, exc)
    answer: dict[str, Any] = {"id": enrollment.id, "state": enrollment.state}
    if enrollment.state == "denied":
        answer["reason"] = enrollment.decision_reason
    elif enrollment.state == "approved":
        if enrollment.revoked_at is not None:
            answer["state"] = "denied"
            answer["reason"] = "the certificate was revoked"
        else:
            answer["certificate"] = enrollment.cert_pem
            answer["ca_certificate"] = service.ca.certificate_pem()
    return answer


@view_config(
    route_name="api_host_approve",
    request_method="POST",
    renderer="json",
    permission=Permission.HOST_APPROVE,
)
def approve_host(context: HostContext, request: FcRequest) -> dict[str, Any]:
    """Approve a pending host: ``{"pool": HARDWARE_POOL_ID}`` (optional; default: where it is)."""
    body = json_body(request, frozenset({"pool", "reason"}))
    pool_id = int_field(body, "pool", required=False)
    pool = authorized_pool(request, pool_id, Permission.HOST_APPROVE) if pool_id else None
    service = request.find_service(IEnrollmentService)
    service.approve(context.host, pool, str_field(body, "reason", required=False) or "")
    data = host_detail_json(context.host, request)
    cert = host_certificate(request.dbsession, context.host)
    data["certificate_serial"] = cert.cert_serial if cert else None
    return data


@view_config(
    route_name="api_host_reject",
    request_method="POST",
    renderer="json",
    permission=Permission.HOST_APPROVE,
)
def reject_host(context: HostContext, request: FcRequest) -> dict[str, Any]:
    """Reject a host: ``{"reason": "..."}``; its certificates are revoked."""
    body = json_body(request, frozenset({"reason"}))
    request.find_service(IEnrollmentService).reject(context.host, str_field(body, "reason") or "")
    return host_detail_json(context.host, request)


@view_config(
    route_name="api_enrollment_tokens",
    request_method="POST",
    renderer="json",
    permission=Permission.VIEW,
)
def issue_token(request: FcRequest) -> dict[str, Any]:
    """Issue a one-time enrollment token (for scripts): ``{"pool": ID, "hostname": NAME,
    "expires": "1h"}``, all optional; needs host_approve on the pool.  Shown once."""
    body = json_body(request, frozenset({"pool", "hostname", "expires"}))
    service = request.find_service(IEnrollmentService)
    pool_id = int_field(body, "pool", required=False)
    if pool_id is None:
        pool_id = request.find_service(IPoolService).by_path_names(service.config.default_pool).id
    pool = authorized_pool(request, pool_id, Permission.HOST_APPROVE)
    issued = service.issue_token(
        pool,
        str_field(body, "hostname", required=False) or None,
        str_field(body, "expires", required=False) or "1h",
        service.config.server_url or request.application_url,
    )
    request.response.status = 201
    request.response.cache_control = "no-store"
    return {
        "token": issued.token,
        "expires": issued.row.expires_at,
        "ca_fingerprint": issued.ca_fingerprint,
        "command": issued.command,
        "pool": pool.id,
        "hostname": issued.row.hostname,
    }

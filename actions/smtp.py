"""``mail.smtp_probe``: talk SMTP to an MX like a sending server would, and say where it stops.

"Some mail does not arrive" is often a firewall that accepts the TCP connection and never sends a banner,
an expired certificate behind STARTTLS (RFC 3207), or a policy rejection at RCPT. The probe walks the stages
of RFC 5321 one by one (connect, banner, EHLO, STARTTLS, MAIL, RCPT, DATA), times each, and reports the first
that failed with its SMTP code and text. Sending a test message changes the world (someone receives it), so
with ``send_to`` written in the runbook (even as a template) the invocation is a WRITE: planned in a dry-run,
gated in a live run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import AliasChoices, Field, model_validator

from actions import attachments
from actions.attachments import KINDS, AttachmentKind
from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params, Plan
from actions.clients.address import FORMS, parse_address
from actions.clients.dns import DnsFailure, Resolver
from engine.errors import ActionError

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")


class SmtpProbeParams(Params):
    domain: str | None = Field(default=None, description="probe the MX hosts of this domain, lowest first")
    host: str | None = Field(default=None, description="probe this 'host[:port]' directly ('[v6]:port')")
    port: int = Field(default=25, ge=1, le=65535, description="port when `host` has none, and for MX hosts")
    nameservers: str | list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("nameservers", "resolver"),
        description="resolvers 'ip[:port]' for the MX/A lookups, one or a list; default: the system's",
    )
    timeout: float = Field(default=10.0, gt=0, description="seconds allowed for each stage")
    helo_name: str = Field(default="breakglass.invalid", description="name announced in EHLO")
    starttls: bool = Field(default=True, description="upgrade with STARTTLS when the server offers it")
    implicit_tls: bool | None = Field(
        default=None, description="TLS from the first byte (RFC 8314 submissions port); default: when port is 465")
    require_starttls: bool = Field(default=False, description="fail when STARTTLS is not offered")
    verify_tls: bool = Field(default=True, description="verify the certificate chain and name")
    ca_file: str | None = Field(default=None, description="CA bundle (PEM) to verify against")
    send_to: str | None = Field(default=None, description="send a test message to this address (mutating)")
    mail_from: str | None = Field(default=None, description="envelope sender; default postmaster@helo_name")
    subject: str = Field(default="breakglass SMTP probe", description="subject of the test message")
    attachments: list[AttachmentKind] = Field(
        default=[],
        description="send one numbered test message per kind instead (needs send_to), to find which kinds are "
        "lost: " + ", ".join(KINDS) + " (harmless samples made in memory)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> SmtpProbeParams:
        if (self.domain is None) == (self.host is None):
            raise ValueError("give exactly one of `domain` (probe its MX) or `host` (host[:port])")
        return self


class StageFailed(ActionError):
    """A stage stopped the conversation; carries the SMTP reply when there was one."""

    def __init__(self, stage: str, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.stage, self.text, self.code = stage, text, code


class Probe:
    """One SMTP conversation with stage timings; the first failure ends it."""

    def __init__(self, params: SmtpProbeParams, host: str, port: int, address: str) -> None:
        self.params, self.host, self.port, self.address = params, host, port, address
        self.stages: list[dict[str, Any]] = []
        self.report: dict[str, Any] = {
            "host": host,
            "address": address,
            "port": port,
            "failed_stage": None,
            "code": None,
            "text": None,
        }
        # smtplib and ssl here, not at the top: validating a runbook imports this module, and needs neither.
        import smtplib

        self.smtp = smtplib.SMTP(timeout=params.timeout)

    def stage(self, name: str, step: Callable[[], T]) -> T:
        import smtplib
        import ssl

        started = time.perf_counter()
        try:
            value = step()
        except StageFailed:
            self._record(name, started, ok=False)
            raise
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:  # socket, TLS and protocol errors
            self._record(name, started, ok=False)
            raise StageFailed(name, _describe(exc), getattr(exc, "smtp_code", None)) from exc
        self._record(name, started, ok=True)
        return value

    def _record(self, name: str, started: float, ok: bool) -> None:
        self.stages.append({"stage": name, "ms": round((time.perf_counter() - started) * 1000, 2), "ok": ok})

    def expect(self, stage: str, reply: tuple[int, bytes], good: range) -> str:
        code, text = reply[0], reply[1].decode("utf-8", "replace")
        if code not in good:
            raise StageFailed(stage, text, code)
        return text

    # -- the conversation (RFC 5321 3) --

    def run(self, message: EmailMessage | None) -> dict[str, Any]:
        try:
            self._converse(message)
        except StageFailed as exc:
            self.report.update(failed_stage=exc.stage, code=exc.code, text=exc.text)
        finally:
            self._quit()
        self.report["stages"] = self.stages
        return self.report

    def _converse(self, message: EmailMessage | None) -> None:
        sock = self.stage("connect", lambda: socket.create_connection((self.address, self.port), self.params.timeout))
        self.smtp.sock, self.smtp.file, self.smtp._host = sock, None, self.host  # type: ignore[attr-defined]
        implicit = self.params.implicit_tls if self.params.implicit_tls is not None else self.port == 465
        if implicit:
            self._handshake()
        self.report["banner"] = self.stage(
            "banner", lambda: self.expect("banner", self.smtp.getreply(), range(220, 221))
        )
        self._ehlo()
        self.report["implicit_tls"] = implicit
        if implicit:  # already encrypted: STARTTLS is neither offered nor needed inside TLS
            pass
        elif "starttls" in self.smtp.esmtp_features and self.params.starttls:
            self._starttls()
        elif self.params.require_starttls:
            raise StageFailed("starttls", "server does not offer STARTTLS")
        if message is not None:
            self._send(message)

    def _ehlo(self, stage: str = "ehlo") -> None:
        self.smtp.ehlo_resp = None
        text = self.stage(stage, lambda: self.expect(stage, self.smtp.ehlo(self.params.helo_name), range(250, 251)))
        self.report[stage] = {
            "text": text.splitlines()[0] if text else "",
            "extensions": sorted(self.smtp.esmtp_features),
        }

    def _starttls(self) -> None:
        self.stage("starttls", lambda: self.expect("starttls", self.smtp.docmd("STARTTLS"), range(220, 221)))
        self._handshake()
        self.smtp.helo_resp = self.smtp.ehlo_resp = None
        self.smtp.esmtp_features = {}
        self._ehlo("ehlo_tls")  # RFC 3207 4.2: forget what was learnt before TLS and ask again

    def _handshake(self) -> None:
        context = tls_context(self.params.verify_tls, self.params.ca_file)

        def handshake() -> ssl.SSLSocket:
            if self.smtp.sock is None:  # a stage failure, like any other closed connection
                raise OSError("the connection closed before the TLS handshake")
            return context.wrap_socket(self.smtp.sock, server_hostname=self.host)

        tls_sock = self.stage("tls_handshake", handshake)
        self.smtp.sock, self.smtp.file = tls_sock, None
        self.report["tls"] = {
            "version": tls_sock.version(),
            "cipher": (tls_sock.cipher() or ("",))[0],
            "verified": self.params.verify_tls,
        }
        self.report["certificate"] = certificate_report(tls_sock.getpeercert(binary_form=True), self.host)

    def _send(self, message: EmailMessage) -> None:
        sender = message["From"]
        self.stage("mail", lambda: self.expect("mail", self.smtp.mail(sender), range(250, 252)))
        self.stage("rcpt", lambda: self.expect("rcpt", self.smtp.rcpt(message["To"]), range(250, 252)))
        # RFC 5321 2.3.8: lines end in CRLF. smtplib fixes line ends only in str messages, and servers that
        # guard against SMTP smuggling refuse bare LF (aiosmtpd reads a whole LF-only message as one line).
        wire = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        self.stage("data", lambda: self.expect("data", self.smtp.data(wire), range(250, 251)))
        self.report["sent"] = {"to": message["To"], "message_id": message["Message-ID"]}

    def _quit(self) -> None:
        import smtplib

        try:
            if self.smtp.sock is not None:
                self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()  # the server hung up first; nothing left to say


def _describe(exc: BaseException) -> str:
    import smtplib

    # smtplib reports a read timeout as SMTPServerDisconnected raised while handling the TimeoutError.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return "timed out"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"server closed the connection: {exc}"
    return f"{type(exc).__name__}: {exc}"


def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    import ssl

    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the operator asked to see the certificate, not to trust it
        return context
    return ssl.create_default_context(cafile=ca_file)


def certificate_report(der: bytes | None, host: str) -> dict[str, Any] | None:
    """Subject, issuer, expiry and whether ``host`` is among the names; read even when not verified."""
    if not der:
        return None
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    not_after = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": not_after.isoformat(),
        "names": names,
        "expires_in_days": (not_after - datetime.now(UTC)).days,
        "name_match": any(name_matches(n, host) for n in names),
    }


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 6.4.3: a wildcard covers exactly one left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def resolve_targets(params: SmtpProbeParams) -> tuple[list[tuple[str, int, str]], dict[str, Any]]:
    """(name, port, address) to try in order, plus what the MX lookup found."""
    if params.host is not None:
        try:
            address = parse_address(params.host, params.port)
        except ValueError as exc:
            return [], {"error": f"{exc}; write host as {FORMS}"}
        return [(address.host, address.port, address.host)], {}
    dns = Resolver.of(params.nameservers, timeout=params.timeout)
    domain = (params.domain or "").rstrip(".")
    try:
        records = sorted(dns.records(domain, "MX"), key=lambda r: r.preference)
        exchanges = [r.exchange.to_text(omit_final_dot=True) for r in records] or [domain]  # RFC 5321 5.1
        targets = [(mx, params.port, a) for mx in exchanges if mx for a in _addresses(dns, mx)]
    except DnsFailure as exc:
        return [], {"mx": [], "error": str(exc)}
    return targets, {"mx": exchanges}


def _addresses(dns: Resolver, name: str) -> list[str]:
    return dns.addresses(name, 4) + dns.addresses(name, 6)


def build_message(params: SmtpProbeParams, ctx: ActionContext, message_id: str | None = None,
                  kind: str | None = None, number: int = 0) -> EmailMessage:
    """The test message; with ``kind``, number ``number`` of a series, carrying that kind of attachment."""
    message = EmailMessage()
    message["From"] = params.mail_from or f"postmaster@{params.helo_name}"
    message["To"] = params.send_to
    # A series is numbered and names its kind in the subject: the person checking the mailbox reads the
    # pattern straight off the list of subjects that arrived.
    series = f" #{number} {kind}" if kind is not None else ""
    message["Subject"] = f"{params.subject}{series} ({ctx.run_id}/{ctx.step_id})"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain=params.helo_name)
    message.set_content(
        f"Test message sent by breakglass run {ctx.run_id}, step {ctx.step_id}, operator {ctx.operator}.\n"
        "It checks that this mailbox receives mail; no reply is needed.\n"
    )
    sample = attachments.build(kind) if kind is not None else None
    if sample is not None:
        message.add_attachment(sample.data, maintype=sample.maintype, subtype=sample.subtype,
                               filename=sample.filename)
    return message


def build_series(params: SmtpProbeParams, ctx: ActionContext,
                 message_ids: list[str] | None = None) -> list[tuple[str, EmailMessage]]:
    """One message per attachment kind, in the order given; ``message_ids`` from the plan keep them the same."""
    ids: list[str] = message_ids or []
    return [(kind, build_message(params, ctx, ids[i] if i < len(ids) else None, kind, i + 1))
            for i, kind in enumerate(params.attachments)]


def probe(params: SmtpProbeParams, message: EmailMessage | None) -> ActionResult:
    """One probe, the arguments' deprecation lines appended to its message."""
    result = _probe(params, message)
    return replace(result, message=result.message + params.deprecation_note())


def _probe(params: SmtpProbeParams, message: EmailMessage | None) -> ActionResult:
    targets, lookup = resolve_targets(params)
    attempts = []
    for name, port, address in targets:
        report = Probe(params, name, port, address).run(message)
        attempts.append(report)
        if report["failed_stage"] not in ("connect", "banner"):
            break  # RFC 5321 5.1: move to the next MX only when this one cannot be reached
    if not attempts:
        output = {
            **lookup,
            "attempts": [],
            "failed_stage": "resolve",
            "code": None,
            "text": lookup.get("error", "no MX or address to connect to"),
        }
        return ActionResult(output, ok=False, message=f"SMTP probe failed at resolve: {output['text']}")
    final = attempts[-1]
    output = {**lookup, **final, "attempts": attempts}
    if final["failed_stage"]:
        where = f"{final['host']}:{final['port']}"
        return ActionResult(
            output,
            ok=False,
            message=f"SMTP to {where} failed at {final['failed_stage']}: {final['code'] or ''} {final['text']}".strip(),
        )
    return ActionResult(output, message=f"SMTP {final['host']}:{final['port']} answered every stage")


def probe_series(params: SmtpProbeParams, messages: list[tuple[str, EmailMessage]]) -> ActionResult:
    """Each message in its own conversation (a filter that cuts one off must not hide the next), then the
    pattern: which kinds were lost and which got through."""
    targets, lookup = resolve_targets(params)
    if not targets:
        return _probe(params, None)  # the same resolve failure a single probe reports
    rows, last = [], {}
    for number, (kind, message) in enumerate(messages, 1):
        for name, port, address in targets:
            last = Probe(params, name, port, address).run(message)
            if last["failed_stage"] not in ("connect", "banner"):
                break
        rows.append({"number": number, "kind": kind, "subject": message["Subject"],
                     "message_id": message["Message-ID"], "accepted": last["failed_stage"] is None,
                     "failed_stage": last["failed_stage"], "code": last["code"], "text": last["text"],
                     "host": last["host"]})
    lost = [r["kind"] for r in rows if not r["accepted"]]
    accepted = [r["kind"] for r in rows if r["accepted"]]
    pattern = describe_pattern(lost, accepted)
    output = {**lookup, **last, "attempts": [last], "series": rows, "lost": lost, "accepted": accepted,
              "pattern": pattern}
    return ActionResult(output, ok=not lost, message=pattern + params.deprecation_note())


def describe_pattern(lost: list[str], accepted: list[str]) -> str:
    """The regularity in plain words, and where it points."""
    if not lost:
        return (f"every kind was accepted ({', '.join(accepted)}): if some never reach the mailbox, the loss is "
                "after SMTP: POP3/IMAP inspection between server and clients, or the mailbox's own filter")
    if not accepted:
        return "every message was lost, the plain one included: not an attachment filter; see the failing stage"
    if set(lost) <= attachments.FILTERED:
        return (f"lost exactly {', '.join(lost)} while {', '.join(accepted)} got through: a content filter on "
                "this path drops macro-enabled Office files / password-protected ZIPs (firewall or UTM mail "
                "inspection, antivirus gateway): check our own first, then the provider's")
    return f"lost: {', '.join(lost)}; accepted: {', '.join(accepted)}"


class SmtpProbeOutput(Output):
    mx: list[Any] = Field([], description="The MX records found, when no host was given.")
    error: str = Field("", description="Why the MX lookup failed.")
    host: str = Field("", description="The server of the last attempt.")
    address: str = Field("", description="Its address.")
    port: int = Field(25, description="Its port.")
    failed_stage: str | None = Field(description="resolve, connect, banner, ehlo, starttls, ehlo_tls, mail, rcpt, "
                                     "data; null when every stage passed.")
    code: int | None = Field(description="The SMTP reply code of the failing stage.")
    text: str | None = Field(description="Its reply text.")
    banner: str = Field("", description="The server's greeting.")
    implicit_tls: bool = Field(False, description="True on a port that starts with TLS (465).")
    ehlo: dict[str, Any] = Field({}, description="The EHLO reply: text, extensions.")
    ehlo_tls: dict[str, Any] = Field({}, description="The EHLO reply after STARTTLS.")
    tls: dict[str, Any] = Field({}, description="TLS version, cipher, and whether it was verified.")
    certificate: dict[str, Any] | None = Field(None, description="The server certificate: subject, issuer, "
                                               "not_after, names, expires_in_days, name_match.")
    sent: dict[str, Any] = Field({}, description="The test message sent: to, message_id.")
    series: list[dict[str, Any]] = Field([], description="With attachments: each message (number, kind, subject, "
                                         "message_id, accepted, failed_stage, code, text).")
    lost: list[str] = Field([], description="With attachments: the kinds that were not accepted.")
    accepted: list[str] = Field([], description="With attachments: the kinds that were accepted.")
    pattern: str = Field("", description="With attachments: the regularity found, in words.")
    stages: list[dict[str, Any]] = Field([], description="Each stage with its timing and result.")
    attempts: list[dict[str, Any]] = Field(description="Every server tried, in order (the last one is above).")


class SmtpProbe(Action[SmtpProbeParams]):
    name = "mail.smtp_probe"
    text_params = frozenset({"subject"})
    summary = "Probe an SMTP server (banner, EHLO, STARTTLS, certificate) and optionally send a test message"
    effect = Effect.READ
    Output = SmtpProbeOutput

    @classmethod
    def effect_of(cls, args: Mapping[str, Any]) -> Effect:
        # Written at all, even as a template that may render empty: whether mail goes out must not wait for
        # the rendered value, which an earlier step's output can decide.
        return Effect.WRITE if args.get("send_to") is not None else Effect.READ

    def run(self, params: SmtpProbeParams, ctx: ActionContext) -> ActionResult:
        return probe(params, None)

    def plan(self, params: SmtpProbeParams, ctx: ActionContext) -> Plan:
        via = params.host or f"MX of {params.domain}"
        if not params.send_to:  # written as a template that rendered empty: still gated, but say so
            return Plan(summary=f"probe {via} only: send_to is empty, no message is sent")
        if params.attachments:
            series = build_series(params, ctx)
            changes = [_change(message, via, kind) for kind, message in series]
            return Plan(
                summary=f"send {len(series)} numbered test messages ({', '.join(params.attachments)}) to "
                f"{params.send_to} via {via}",
                changes=changes,
                state={"message_ids": [message["Message-ID"] for _, message in series]},
            )
        message = build_message(params, ctx)
        # apply sends the very message shown here: same Message-ID, so the audit and the mailbox agree.
        return Plan(
            summary=f"send a test message to {params.send_to} via {via}",
            changes=[_change(message, via)],
            state={"message_id": message["Message-ID"]},
        )

    def apply(self, params: SmtpProbeParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        if params.attachments and params.send_to:
            return probe_series(params, build_series(params, ctx, plan.state.get("message_ids")))
        message_id = plan.state.get("message_id")
        return probe(params, build_message(params, ctx, message_id) if params.send_to else None)


def _text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


def _change(message: EmailMessage, via: str, kind: str | None = None) -> dict[str, Any]:
    change = {
        "message_id": message["Message-ID"],
        "action": "send_message",
        "via": via,
        "from": message["From"],
        "to": message["To"],
        "subject": message["Subject"],
        "body": _text_of(message),
    }
    sample = attachments.build(kind) if kind else None
    if sample is not None:
        change["attachment"] = {"filename": sample.filename, "type": sample.mime_type, "bytes": len(sample.data)}
    return change

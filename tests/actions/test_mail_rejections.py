"""mail.rejections: the receivers' own refusals named from mail log lines (actions/data/rejections.yaml)."""

from __future__ import annotations

import pytest

from actions.base import ActionContext
from actions.mail_rejections import MailRejections, MailRejectionsParams, classify

LINES = {
    "gmail": "to=<a@gmail.com>, relay=gmail-smtp-in.l.google.com[209.85.1.1]:25, status=bounced (host said: "
             "550-5.7.1 [203.0.113.25] Our system has detected that this message is likely unsolicited mail. gsmtp)",
    "microsoft": "to=<b@contoso.com>, relay=contoso-com.mail.protection.outlook.com[52.1.1.1]:25, status=bounced "
                 "(host said: 550 5.7.606 Access denied, banned sending IP [203.0.113.25])",
    "docomo": "to=<c@docomo.ne.jp>, relay=mfsmx.docomo.ne.jp[203.138.1.1]:25, status=bounced (host said: 550 5.7.1 "
              "rejected)",
    "au": "to=<d@ezweb.ne.jp>, relay=lsean.ezweb.ne.jp[111.1.1.1]:25, status=deferred (host said: 421 4.7.0 try later)",
    "softbank": "to=<e@i.softbank.jp>, relay=mx.softbank.ne.jp[210.1.1.1]:25, status=bounced (host said: 554 rejected)",
}


@pytest.mark.parametrize(("receiver", "code"), [("gmail", "550 5.7.1"), ("microsoft", "550 5.7.606"),
                                                ("docomo", "550 5.7.1"), ("au", "421 4.7.0"), ("softbank", "554")])
def test_each_receiver_and_its_code(receiver: str, code: str) -> None:
    found = classify(LINES[receiver])
    assert found is not None and (found["receiver"], found["code"]) == (receiver, code)
    assert found["meaning"]


def test_an_outlook_consumer_block_names_its_s_code() -> None:
    found = classify("to=<c@hotmail.com> status=bounced (550 SC-001 Unfortunately, messages from 203.0.113.25 "
                     "weren't sent. part of their network is on our block list (S3150))")
    assert found is not None and found["receiver"] == "microsoft" and "SC-001" in found["code"]


def test_delivered_mail_and_unknown_receivers_are_not_evidence() -> None:
    assert classify("to=<a@gmail.com>, relay=gmail-smtp-in.l.google.com[209.85.1.1]:25, status=sent "
                    "(250 2.0.0 OK gsmtp)") is None
    assert classify("to=<x@small.example>, status=bounced (host said: 550 5.1.1 no such user)") is None


def test_the_action_sums_up_per_receiver_with_its_procedure() -> None:
    text = "\n".join([LINES["gmail"], LINES["gmail"], LINES["microsoft"], "noise"])
    result = MailRejections().run(MailRejectionsParams(text=text), ActionContext())
    assert result.ok and result.output["count"] == 3 and result.output["unmatched"] == 1
    rows = {r["id"]: r for r in result.output["receivers"]}
    assert rows["gmail"]["count"] == 2 and "postmaster.google.com" in rows["gmail"]["url"]
    assert "sender.office.com" in rows["microsoft"]["procedure"] and "SNDS" in rows["microsoft"]["procedure"]
    assert result.message == "rejections: Gmail (Google) 2, Microsoft (Outlook.com, Hotmail, Office 365) 1"

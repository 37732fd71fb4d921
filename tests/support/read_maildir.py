#!/usr/bin/python3
"""Prints the messages of a Maildir (new/ and cur/) as JSON, decoded:
subject, recipients, certroll headers, plain-text body. Used by the
integration tests to read what the SMTP server received."""
import email
import email.header
import email.policy
import json
import os
import sys

root = sys.argv[1]
out = []
for sub in ("new", "cur"):
    d = os.path.join(root, sub)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        out.append({
            "subject": str(msg["Subject"]),
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "event_id": str(msg["X-Certroll-Event-Id"]),
            "event": str(msg["X-Certroll-Event"]),
            "message_id": str(msg["Message-ID"]),
            "body": msg.get_content(),
        })
json.dump(out, sys.stdout)

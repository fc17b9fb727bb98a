"""What a send needs besides the carrier: recipients (contacts, groups), policy (opt-outs, quotas), sending parts, the audit log's text."""

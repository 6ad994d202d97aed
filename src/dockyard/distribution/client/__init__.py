"""The registry client: credentials, auth challenges and tokens, the registry HTTP client, pull and push.

Only `credentials` is imported by the CLI (stdlib only); everything else runs in the daemon and
imports urllib3 lazily.
"""

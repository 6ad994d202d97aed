"""dockyard's registry server: the OCI distribution spec v1.1 over a content-addressable filesystem store.

Layout: `paths` (names, digests, on-disk layout in one place), `storage` (blobs, uploads, manifests,
tags), `httpd` (a lean threaded HTTP/1.1 server with keep-alive and sendfile), `auth` (htpasswd,
ACL, bearer tokens), `app` (thin handlers and routing), `gc` (mark and sweep), `search` (v1 search).
"""

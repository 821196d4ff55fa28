"""The demo sandbox: everything `portal-ops demo` needs on one machine, with no root,
no config and no running service.

- ``portal_app/``: the sample "Business Portal" (two versions are cut from it into a git repo)
- ``loadbalancer``: the sandbox's front, a small reverse proxy with drain and enable
- ``probe``: a steady load through the front that counts every failed request
- ``sandbox``: builds the repo, the hosts, the database and a ``portal-ops.toml``; stops it all
"""

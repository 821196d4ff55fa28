"""The fleet: which hosts a command acts on (``--hosts``/``--roles``) and where the host list
comes from (the config's ``[[hosts]]``, an Ansible inventory)."""

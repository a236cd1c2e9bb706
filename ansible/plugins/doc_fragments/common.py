# -*- coding: utf-8 -*-
# Copyright 2026 The libwrench authors; no licence stated (see COPYRIGHT).
"""The options that every module of libwrench.wrench passes to the command."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  dir:
    description:
      - The trigger directory, an absolute path (C(--dir)). When omitted, the
        command uses C($WRENCH_DIR) of the module's environment or its
        built-in C(/var/lib/juju/wrench).
      - The command refuses a relative path, and a directory (or an ancestor)
        that an agent would not trust, with its message and fix.
    type: path
  owner:
    description:
      - >-
        The user the agent runs as, a name or a uid (C(--owner)): files are
        judged, read and written for that agent. Only root may give it to
        the commands that write (C(set), C(unset), C(clear)); see wrench(1),
        "A NON-ROOT AGENT".
    type: str
  executable:
    description:
      - >-
        The C(wrench) command to run: a name looked up in C(PATH), or a path.
      - The modules only read its C(--json) output, so it must be the C(wrench)
        of libwrench 1.2.0 or later.
    type: str
    default: wrench
'''

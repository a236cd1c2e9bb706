#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright 2026 The libwrench authors; no licence stated (see COPYRIGHT).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: clear
short_description: Remove every trigger of a host, or only the expired lines
version_added: 1.2.0
description:
  - Runs C(wrench clear) on the host, which removes every trigger file of
    the trigger directory (and leftovers of interrupted writes) and the
    counters with them, keeping the directory; or, with C(expired), runs
    C(wrench clear --expired), which removes only the lines whose C(until=)
    has passed.
  - The module reads the lines with C(wrench list --json) before and after,
    and reports C(changed) when they differ. The command itself runs on every
    run (outside check mode), so that a directory it refuses fails the task
    with its message and fix even when nothing is listed in it.
  - >-
    A missing directory is not an error: there is nothing to clear.
options:
  expired:
    description:
      - C(true) removes only the expired lines (C(until=) passed); C(false)
        removes every trigger file.
    type: bool
    default: false
extends_documentation_fragment:
  - libwrench.wrench.common
attributes:
  check_mode:
    support: full
    description: >-
      Reports the lines that would go, from C(wrench list --json) (and, with
      C(expired), the C(expired) flag of C(wrench hits --json)), without
      running C(wrench clear).
  diff_mode:
    support: full
    description: The before and after texts are the lines of the directory, one C(CATEGORY LINE) per line.
seealso:
  - module: libwrench.wrench.trigger
  - module: libwrench.wrench.hits
author:
  - The libwrench authors
'''

EXAMPLES = r'''
- name: Clean up everywhere, even when the job failed
  block:
    - name: The scenario
      ansible.builtin.include_tasks: scenario.yml
  always:
    - name: No trigger left
      libwrench.wrench.clear:
      become: true

- name: Remove what has expired
  libwrench.wrench.clear:
    expired: true
  become: true
'''

RETURN = r'''
removed:
  description: The lines removed (in check mode, those that would be), as C(CATEGORY LINE) texts.
  returned: always
  type: list
  elements: str
  sample: [machine-agent refuse-upgrade fail until=2026-12-01T18:30:00Z]
remaining:
  description: The lines left, as C(CATEGORY LINE) texts (in check mode, those that would be left).
  returned: always
  type: list
  elements: str
cmd:
  description: The command run, as an argument list.
  returned: when not in check mode
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.libwrench.wrench.plugins.module_utils.wrench_command import (
    WRENCH_COMMON_ARGS, WrenchCommand, line_text)


def listed(cmd):
    """Every listed line as 'CATEGORY LINE' (a file that cannot be read as
    'CATEGORY *', as wrench list shows it). Exit status 1 only says that
    something is ignored, which the lines show."""
    rc, doc, err = cmd.run('list', json_out=True, ok_rcs=(0, 1))
    return ['%s %s' % (t['category'], '*' if t['feature'] is None
                       else line_text(t['feature'], t['directives']))
            for t in (doc or {'triggers': []})['triggers']]


def expired_lines(cmd):
    """The lines whose until= has passed, by the command's own clock and
    judgement. hits exits 1 for a missing directory, which has none."""
    rc, doc, err = cmd.run('hits', json_out=True, ok_rcs=(0, 1))
    return set('%s %s' % (r['category'], r['text'])
               for r in (doc or {'lines': []})['lines'] if r['expired'])


def main():
    module = AnsibleModule(
        argument_spec=dict(expired=dict(type='bool', default=False), **WRENCH_COMMON_ARGS),
        supports_check_mode=True,
    )
    cmd = WrenchCommand(module)
    before = listed(cmd)

    if module.check_mode:
        gone = expired_lines(cmd) if module.params['expired'] else set(before)
        after = [line for line in before if line not in gone]
    else:
        options = ['--expired'] if module.params['expired'] else []
        cmd.run('clear', options=options)
        after = listed(cmd)

    remaining = list(after)
    removed = []
    for line in before:
        if line in remaining:
            remaining.remove(line)
        else:
            removed.append(line)
    result = dict(changed=bool(removed), removed=removed, remaining=after)
    if not module.check_mode:
        result['cmd'] = cmd.argv('clear', options=options)
    if module._diff:
        result['diff'] = dict(before=''.join(line + '\n' for line in before),
                              after=''.join(line + '\n' for line in after),
                              before_header='trigger lines', after_header='trigger lines')
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright 2026 The libwrench authors; no licence stated (see COPYRIGHT).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: hits
short_description: Read the fire records of a host's trigger lines, or wait for fires
version_added: 1.2.0
description:
  - >-
    Returns every trigger line of the host's trigger directory (or of
    C(category), or of C(feature) in it) with its machine-wide counters: the
    calls that reached it, the times it fired since it was set or reset, and
    its last fire, from C(wrench hits --json).
  - With C(wait_fires), first waits until the lines of C(feature) have fired
    that many times in all on this host, with C(wrench wait --fires N
    --timeout D --json), which reads the counters four times a second; fires
    that happened before the task started count. The task then fails when
    the timeout passes, as M(ansible.builtin.wait_for) does; see the examples
    for waiting until a point fired on any host rather than on all.
  - Nothing is changed on the host; the task never reports C(changed).
  - >-
    The task fails with the command's message and fix when the command
    reports a problem (exit status 1 or 2): a missing or refused directory, a
    category without a trigger file, counters the agent cannot use, or a wait
    for a feature that no line names (which could never fire).
options:
  category:
    description:
      - The category whose lines to return; all categories when omitted.
    type: str
  feature:
    description:
      - Only the lines of this feature of C(category). Needs C(category).
    type: str
  wait_fires:
    description:
      - Wait until the lines of C(feature) have fired at least this many
        times on this host before reading the records. Needs C(category) and
        C(feature). Lines with C(scope=process) are not counted.
    type: int
  timeout:
    description:
      - >-
        How long C(wait_fires) waits, written as for C(wrench wait --timeout):
        a number with a unit (C(500ms), C(30s), C(5m)) or whole hours or days.
    type: str
    default: 60s
extends_documentation_fragment:
  - libwrench.wrench.common
attributes:
  check_mode:
    support: full
    description: The module only reads; it waits and reads in check mode too.
  diff_mode:
    support: none
seealso:
  - module: libwrench.wrench.trigger
  - module: libwrench.wrench.clear
author:
  - The libwrench authors
'''

EXAMPLES = r'''
- name: Wait until the agent died before the commit, on every host
  libwrench.wrench.hits:
    category: machine-agent
    feature: crash-before-commit
    wait_fires: 1
    timeout: 5m
  register: crash

- name: Wait until it fired on any host (a timeout is not a failure here)
  libwrench.wrench.hits:
    category: machine-agent
    feature: crash-before-commit
    wait_fires: 1
    timeout: 5m
  register: crash
  failed_when: crash.timed_out is not defined

- name: It fired somewhere
  ansible.builtin.assert:
    that: ansible_play_hosts | map('extract', hostvars, ['crash', 'timed_out']) is contains(false)
  run_once: true

- name: Every fire record of the host
  libwrench.wrench.hits:
  register: records
'''

RETURN = r'''
records:
  description: >-
    The lines, as C(wrench hits --json) gives them: category, feature, line
    (its number), text (the feature and its directives), scope, counters
    (machine, process or unavailable), calls, fires (null when not counted
    on the machine), last_fire (UTC), last_pid, spent, expired, errno,
    errno_name, value.
  returned: always
  type: list
  elements: dict
  sample:
    - category: machine-agent
      feature: crash-before-commit
      line: 1
      text: crash-before-commit kill times=1
      scope: machine
      counters: machine
      calls: 1
      fires: 1
      last_fire: '2026-12-01T18:02:11Z'
      last_pid: 4242
      spent: true
      expired: false
      errno: null
      errno_name: null
      value: null
fires:
  description: The sum of the machine-wide fires of C(records) (lines counted per process are left out, as C(wrench wait) leaves them).
  returned: always
  type: int
  sample: 1
dir:
  description: The trigger directory that was read.
  returned: always
  type: str
counters_problem:
  description: Why the agent cannot use its counters, or null.
  returned: always
  type: str
wait:
  description: What C(wrench wait --json) printed (category, feature, fires, wanted, waited_s, timed_out).
  returned: when C(wait_fires) is given
  type: dict
  sample: {category: machine-agent, feature: crash-before-commit, fires: 1, wanted: 1, waited_s: 0.25, timed_out: false}
timed_out:
  description: Whether the wait ended at the timeout without enough fires.
  returned: when C(wait_fires) is given and the wait ran
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.libwrench.wrench.plugins.module_utils.wrench_command import (
    WRENCH_COMMON_ARGS, WrenchCommand)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            category=dict(type='str'),
            feature=dict(type='str'),
            wait_fires=dict(type='int'),
            timeout=dict(type='str', default='60s'),
            **WRENCH_COMMON_ARGS
        ),
        required_by=dict(feature='category'),
        supports_check_mode=True,
    )
    p = module.params
    # required_if cannot say "whenever wait_fires is given".
    if p['wait_fires'] is not None and not (p['category'] and p['feature']):
        module.fail_json(msg='wait_fires needs category and feature: the point to wait for')
    cmd = WrenchCommand(module)
    result = dict(changed=False)

    timeout_msg = None
    if p['wait_fires'] is not None:
        # The command waits and reads the counters itself; a timeout is
        # exit 1 with the JSON document, anything else it refused is not.
        rc, doc, err = cmd.run('wait', [p['category'], p['feature']],
                               ['--fires', str(p['wait_fires']), '--timeout', p['timeout']],
                               json_out=True, ok_rcs=(0, 1))
        if rc == 1 and not (doc and doc.get('timed_out')):
            cmd.fail(cmd.argv('wait', [p['category'], p['feature']]), rc, '', err, doc)
        result['wait'] = doc
        result['timed_out'] = bool(doc and doc.get('timed_out'))
        if result['timed_out']:
            # With --json the document replaces the command's "timed out"
            # line; its warnings (a point no process reached) still matter.
            timeout_msg = '\n'.join(
                ['wrench: timed out after %.1fs: %s/%s fired %d time(s), %d wanted'
                 % (doc['waited_s'], doc['category'], doc['feature'], doc['fires'], doc['wanted'])]
                + err.strip().splitlines())

    rc, doc, err = cmd.run('hits', [p['category']] if p['category'] else [],
                           json_out=True, ok_rcs=(0, 1))
    doc = doc or {'dir': p['dir'], 'lines': [], 'counters_problem': None}
    records = [r for r in doc['lines'] if p['feature'] is None or r['feature'] == p['feature']]
    result.update(records=records, dir=doc['dir'], counters_problem=doc['counters_problem'],
                  fires=sum(r['fires'] for r in records if isinstance(r['fires'], int)))
    if rc != 0:
        cmd.fail(cmd.argv('hits', [p['category']] if p['category'] else []), rc, '', err, **result)
    if timeout_msg is not None:
        module.fail_json(msg=timeout_msg, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

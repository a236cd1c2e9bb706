#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright 2026 The libwrench authors; no licence stated (see COPYRIGHT).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: trigger
short_description: Set or remove one line of a libwrench trigger file
version_added: 1.2.0
description:
  - Makes the failure point C(feature) of C(category) fire as C(directives) say,
    or stops it, by running C(wrench set) or C(wrench unset) on the host.
  - >-
    The module reads the current lines with C(wrench list CATEGORY --json) and
    runs C(wrench set) only when the line differs, because C(wrench set)
    restarts the line's machine-wide counters: a second run of the same task
    reports C(changed=false) and leaves the counters, and a test that waits
    for fires, alone.
  - Every check (the line's syntax, the trust rules of the directory and of
    the file, the owner) is the command's. When it refuses, the task fails
    with the command's own message, which names what was found and the fix.
  - When C(wrench set) writes the line but the agent would ignore it or run
    degraded (exit status 1, for example a line that a count decides and no
    counters), the task fails with C(changed=true) and the command's warnings.
options:
  category:
    description:
      - >-
        The category: the name of the trigger file in the trigger directory.
    type: str
    required: true
  feature:
    description:
      - The failure point (feature) of the category that the line is for.
    type: str
    required: true
  directives:
    description:
      - The directives of the line, for example C(fail), C(times=1) or C(errno=ENOSPC),
        as C(wrench set) takes them; none means every call fails.
      - They are compared with the line in the file in the order given. The
        library keys a line's counters by its words as written, so
        C([fail, times=1]) and C([times=1, fail]) are different lines to the
        counters, and changing the order rewrites the line and re-arms it.
      - See wrench(5) for every directive.
    type: list
    elements: str
    default: []
  for:
    description:
      - >-
        The line expires after this duration from the time it is written, for
        example C(30m), C(8h) or C(7d): C(wrench set --for) adds an
        C(until=) directive, so that a job that dies leaves no live trigger.
      - A line with the same directives and an C(until=) that has not passed
        yet is left as it is. A second run therefore does not push the expiry
        back; once the line has expired (C(wrench list) shows it as ignored), a
        run writes it again with a new C(until=).
      - Not to be given with an C(until=) directive (the command refuses it).
    type: str
  state:
    description:
      - C(present) makes sure the line is in the file, C(absent) removes every
        line for C(feature) (with C(wrench unset CATEGORY FEATURE); the file is
        deleted when nothing is left in it).
      - C(directives) and C(for) do not matter for C(absent).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - libwrench.wrench.common
attributes:
  check_mode:
    support: full
    description: Reports what would change without running C(wrench set) or C(wrench unset).
  diff_mode:
    support: full
    description: >-
      The before and after texts are the lines of C(feature) in the file. In
      check mode an C(until=) that C(wrench set --for) would write shows as
      C(until=<now + FOR>).
notes:
  - C(dir), C(owner) and C(executable) are those of every module of this collection.
  - Run it as root (C(become)) to write in C(/var/lib/juju/wrench) or to give C(owner).
seealso:
  - module: libwrench.wrench.hits
  - module: libwrench.wrench.clear
author:
  - The libwrench authors
'''

EXAMPLES = r'''
- name: The machine agent refuses the upgrade, for an hour at most
  libwrench.wrench.trigger:
    category: machine-agent
    feature: refuse-upgrade
    for: 1h
  become: true

- name: The agent dies once before the commit
  libwrench.wrench.trigger:
    category: machine-agent
    feature: crash-before-commit
    directives: [kill, times=1]
    owner: juju-agent
  become: true

- name: No more refusals
  libwrench.wrench.trigger:
    category: machine-agent
    feature: refuse-upgrade
    state: absent
  become: true
'''

RETURN = r'''
line:
  description: The line of C(feature) in the file after the task (in check mode, the line it would write); null when there is none.
  returned: always
  type: str
  sample: crash-before-commit kill times=1
path:
  description: The trigger file of C(category).
  returned: always
  type: str
  sample: /var/lib/juju/wrench/machine-agent
lines:
  description: >-
    The lines of C(category) after the task, as C(wrench list CATEGORY --json)
    gives them (feature, directives, line, path, ignored, reason, errno,
    errno_name, value). Not refreshed in check mode.
  returned: always
  type: list
  elements: dict
cmd:
  description: The command that changed the file (set or unset), as an argument list.
  returned: changed and not check mode
  type: list
  elements: str
  sample: [wrench, set, --dir, /var/lib/juju/wrench, --, machine-agent, crash-before-commit, kill, times=1]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.libwrench.wrench.plugins.module_utils.wrench_command import (
    WRENCH_COMMON_ARGS, WrenchCommand, line_text)


def category_lines(cmd, category):
    """The list --json document and its entries for the category.

    Exit status 1 only says that something is ignored or that the category
    has no file yet: the document says which, so both are read, not failed.
    """
    rc, doc, err = cmd.run('list', [category], json_out=True, ok_rcs=(0, 1))
    doc = doc or {'dir': None, 'triggers': []}
    return doc, [t for t in doc['triggers'] if t['category'] == category]


def matches(entry, directives, duration):
    """Whether a listed line is the one wanted and in force.

    An ignored line never matches: a line the agent would ignore is not
    present to it (an expired until= is listed as ignored too), and rewriting
    it is left to wrench set, which refuses what it must.
    """
    if entry['ignored']:
        return False
    have = entry['directives']
    if duration is None:
        return have == directives
    kept = [d for d in have if not d.startswith('until=')]
    return kept == directives and len(have) - len(kept) == 1


def feature_text(entries):
    return ''.join(line_text(e['feature'], e['directives']) + '\n' for e in entries)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            category=dict(type='str', required=True),
            feature=dict(type='str', required=True),
            directives=dict(type='list', elements='str', default=[]),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            **dict(WRENCH_COMMON_ARGS, **{'for': dict(type='str')})
        ),
        supports_check_mode=True,
    )
    p = module.params
    category, feature, directives, duration = p['category'], p['feature'], p['directives'], p['for']
    cmd = WrenchCommand(module)

    doc, entries = category_lines(cmd, category)
    mine = [e for e in entries if e['feature'] == feature]
    # A file that cannot be read at all is listed with a null feature: it may
    # hold the line or not, so only the command can tell (and it refuses).
    unreadable = [e for e in entries if e['feature'] is None]
    path = entries[0]['path'] if entries else '%s/%s' % ((doc['dir'] or '').rstrip('/'), category)

    if p['state'] == 'present':
        in_force = not unreadable and len(mine) == 1 and matches(mine[0], directives, duration)
        wanted = line_text(feature, directives)
        if duration is not None:
            wanted += ' until=<now + %s>' % duration
        after_text = feature_text(mine) if in_force else wanted + '\n'
        argv_ops = [category, feature] + directives
        options = ['--for', duration] if duration is not None else []
        command = 'set'
    else:
        in_force = not unreadable and not mine
        after_text = ''
        argv_ops, options, command = [category, feature], [], 'unset'

    result = dict(changed=not in_force, path=path, lines=entries)
    if module._diff:
        result['diff'] = dict(before=feature_text(mine), after=after_text,
                              before_header='%s (lines of %s)' % (path, feature),
                              after_header='%s (lines of %s)' % (path, feature))

    if result['changed'] and not module.check_mode:
        rc, out, err = cmd.run(command, argv_ops, options, ok_rcs=(0, 1))
        if rc == 1:
            # set exits 1 after writing the line when the agent would ignore
            # it or run degraded: the file has changed, and the task says so
            # beside the warnings. unset exits 1 when it found nothing.
            cmd.fail(cmd.argv(command, argv_ops, options), rc, out, err,
                     changed=(command == 'set'))
        result['cmd'] = cmd.argv(command, argv_ops, options)
        doc, entries = category_lines(cmd, category)
        mine = [e for e in entries if e['feature'] == feature]
        result['lines'] = entries
        if module._diff:
            result['diff']['after'] = feature_text(mine)

    if p['state'] == 'present' and (module.check_mode and result['changed']):
        result['line'] = after_text.rstrip('\n')
    else:
        result['line'] = line_text(mine[0]['feature'], mine[0]['directives']) if mine else None
    module.exit_json(**result)


if __name__ == '__main__':
    main()

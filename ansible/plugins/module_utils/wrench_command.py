# -*- coding: utf-8 -*-
"""Runs the wrench command for the modules of libwrench.wrench.

The modules never parse the command's human output and never repeat its
checks: they ask for --json, and when the command refuses, its stderr
(which already says what was found and gives the fix) becomes the task's
message unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

# The options every module takes, as argument_spec entries.
WRENCH_COMMON_ARGS = dict(
    dir=dict(type='path'),
    owner=dict(type='str'),
    executable=dict(type='str', default='wrench'),
)


class WrenchCommand(object):
    """The wrench command as one module runs it, with its --dir and --owner."""

    def __init__(self, module):
        self.module = module
        exe = module.params['executable']
        # A bare name is looked up in PATH (and the usual sbin directories)
        # so that the task fails here, saying what is missing, rather than
        # with an OSError from the first run.
        if os.path.sep not in exe:
            exe = module.get_bin_path(exe, required=True)
        self.executable = exe

    def argv(self, command, operands=(), options=(), json_out=False, owner=True):
        """The argument vector: options first, then -- so that a feature
        starting with - is never taken for an option."""
        argv = [self.executable, command]
        if self.module.params.get('dir'):
            argv += ['--dir', self.module.params['dir']]
        if owner and self.module.params.get('owner'):
            argv += ['--owner', self.module.params['owner']]
        argv += list(options)
        if json_out:
            argv.append('--json')
        if operands:
            argv += ['--'] + list(operands)
        return argv

    def run(self, command, operands=(), options=(), json_out=False,
            ok_rcs=(0,), owner=True, **fail_extra):
        """Runs the command; returns (rc, document or stdout, stderr).

        An exit status outside ok_rcs fails the task with the command's
        stderr as the message; fail_extra is added to that failure's
        return values (for example changed=True after a write).
        """
        argv = self.argv(command, operands, options, json_out, owner)
        rc, out, err = self.module.run_command(argv, check_rc=False)
        doc = None
        if json_out and out.strip():
            try:
                doc = json.loads(out)
            except ValueError as e:
                self.module.fail_json(msg='wrench %s --json printed something that is not JSON: %s'
                                      % (command, e), cmd=argv, rc=rc, stdout=out, stderr=err)
        if rc not in ok_rcs:
            self.fail(argv, rc, out, err, doc, **fail_extra)
        return rc, (doc if json_out else out), err

    def fail(self, argv, rc, out, err, doc=None, **extra):
        msg = err.strip() or 'wrench %s exited with status %d' % (argv[1], rc)
        result = dict(msg=msg, cmd=argv, rc=rc, stdout=out, stderr=err)
        if doc is not None:
            result['document'] = doc
        result.update(extra)
        self.module.fail_json(**result)


def line_text(feature, directives):
    """A trigger line as the file holds it: words one space apart."""
    return ' '.join([feature] + list(directives))
